"""The `deterministic` setting (CUDA flags set before the first kernel) and EWC's Fisher through the
fused LSTM where cuDNN refuses a backward after an inference-mode forward (spec §7 item 21).

No GPU here: the CUDA flags are set and read back on a `torch.device("cuda")` (setting them needs no
GPU), and cuDNN's refusal is emulated on the CPU by a fused LSTM that raises as cuDNN does whenever
it is asked for a graph in inference mode, with the CPU counted as a cuDNN device."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor

from engine.benchmarks.base import Batch, Benchmark, InputSpec
from engine.config import RunConfig, TrainingConfig
from engine.determinism import CUBLAS_DETERMINISTIC, CUBLAS_ENV, apply_determinism, determinism_state
from engine.errors import ConfigError
from engine.methods.base import MethodContext
from engine.methods.ewc import Ewc, EwcOptions
from engine.models import lstm as lstm_mod
from engine.models.lstm import LSTM, LstmOptions
from engine.presets import load_preset


@pytest.fixture
def restore_flags() -> Iterator[None]:
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


def test_the_setting_defaults_on_and_is_validated() -> None:
    assert RunConfig().deterministic is True
    assert load_preset("demo", ["deterministic=false"]).deterministic is False
    with pytest.raises(ConfigError, match="deterministic"):
        load_preset("demo", ["deterministic=7"])


def test_cuda_runs_get_every_flag_before_their_first_kernel(restore_flags: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CUBLAS_ENV, raising=False)
    apply_determinism(True, torch.device("cuda"))
    assert determinism_state() == {"deterministic_algorithms": True, "cudnn_deterministic": True,
                                   "cudnn_benchmark": False, "cublas_workspace_config": CUBLAS_DETERMINISTIC}
    assert torch.is_deterministic_algorithms_warn_only_enabled()  # an op without one warns, never fails the run
    apply_determinism(False, torch.device("cuda"))
    state = determinism_state()
    assert not state["deterministic_algorithms"] and not state["cudnn_deterministic"] and not state["cudnn_benchmark"]


def test_a_users_cublas_setting_is_kept_and_cpu_runs_are_left_alone(restore_flags: None,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CUBLAS_ENV, ":16:8")
    before = determinism_state()
    apply_determinism(True, torch.device("cpu"))
    assert determinism_state() == before
    apply_determinism(True, torch.device("cuda"))
    assert determinism_state()["cublas_workspace_config"] == ":16:8"


# -- EWC's Fisher through the fused LSTM where an inference-mode forward has no backward ----------------
class SeqTask:
    def __init__(self, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.name = f"t{seed}"
        self.x = torch.randint(-1, 2, (9, 12, 4), generator=g).float()
        self.y = torch.randint(2, (9,), generator=g)
        self.lengths = torch.randint(1, 13, (9,), generator=g)

    def size(self, split: str) -> int:
        return len(self.x)

    def get(self, split: str, idx: Tensor) -> Batch:
        return Batch(self.x[idx], self.y[idx], self.lengths[idx])


def lstm_ewc(fisher_impl: str) -> Ewc:
    spec = InputSpec((12, 4), 4, sequential=True)
    bench = Benchmark([SeqTask(0), SeqTask(1)], torch.tensor([[0, 1], [2, 3]]), spec, "toy", {})
    torch.manual_seed(0)
    model = LSTM(LstmOptions(hidden=8, impl="fast"), spec)
    ctx = MethodContext(model, bench, torch.device("cpu"), TrainingConfig(), 0)
    return Ewc(EwcOptions(fisher_impl=fisher_impl), ctx)  # type: ignore[arg-type]


@pytest.fixture
def cudnn_like_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU as a cuDNN device: the fused LSTM refuses to build a graph in inference mode."""
    real = torch._VF.lstm

    def refusing_lstm(*args: object) -> object:
        train = args[6]  # _VF.lstm(input, hx, params, has_biases, num_layers, dropout, train, ...)
        if not train and torch.is_grad_enabled():
            raise RuntimeError("cudnn RNN backward can only be called in training mode")
        return real(*args)

    monkeypatch.setattr(lstm_mod, "CUDNN_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(torch._VF, "lstm", refusing_lstm)


def test_fused_lstm_gives_the_same_function_in_both_modes() -> None:
    """Why training mode may stand in for eval mode: one layer, no dropout, same outputs and gradients."""
    from tests.test_lstm import _inputs, _outputs_and_grads

    x, lengths = _inputs()
    model = LSTM(LstmOptions(hidden=16), InputSpec((30, 4), 10, sequential=True))
    w = [p.detach().clone().requires_grad_() for p in model.parameters()]
    out_t, g_t = _outputs_and_grads(lambda *a: lstm_mod.lstm_fast(*a, train=True), x, lengths, w, None)
    out_e, g_e = _outputs_and_grads(lambda *a: lstm_mod.lstm_fast(*a, train=False), x, lengths, w, None)
    assert torch.allclose(out_t, out_e, rtol=0, atol=1e-6)
    for a, b in zip(g_t, g_e):
        assert torch.allclose(a, b, rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # vmap over the CPU fused LSTM
@pytest.mark.parametrize("impl", ["loop", "vmap"])
def test_ewc_fisher_through_the_lstm_where_cudnn_refuses_eval_mode(impl: str, cudnn_like_cpu: None) -> None:
    m = lstm_ewc(impl)
    fisher = m.compute_fisher(0)  # eval mode, gradients: possible because the fused call runs in training mode
    assert m.model.training  # the model's own mode is restored afterwards
    assert all(torch.isfinite(f).all() for f in fisher.values()) and sum(f.sum() for f in fisher.values()) > 0
    m.model.eval()
    with torch.no_grad():  # evaluation keeps cuDNN's inference mode (no graph, so no refusal)
        task = SeqTask(0)
        assert m.model(task.x, task.lengths).shape == (9, 4)


def test_the_emulation_catches_an_inference_mode_backward(cudnn_like_cpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the training-mode rule, the Fisher fails as it does on CUDA: the emulation is real."""
    monkeypatch.setattr(lstm_mod, "fused_train_mode", lambda training, x: training)
    with pytest.raises(RuntimeError, match="training mode"):
        lstm_ewc("loop").compute_fisher(0)


def test_the_fisher_is_the_same_with_the_rule() -> None:
    """On the CPU the rule changes nothing: the Fisher without emulation equals the one with it."""
    plain = lstm_ewc("loop").compute_fisher(0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lstm_mod, "CUDNN_DEVICES", ("cuda", "cpu"))
        ruled = lstm_ewc("loop").compute_fisher(0)
    for k in plain:
        assert torch.allclose(plain[k], ruled[k], rtol=1e-6, atol=1e-9), k
