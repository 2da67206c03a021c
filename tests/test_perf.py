"""Issue 14 (performance): host syncs per training step, the vmapped Fisher against the batch-1
definition, the linear reference LSTM, the evaluation setting, and `cltui bench` end to end.

Behaviour only: no timed assertion anywhere (speed is measured by `cltui bench`, not by tests).
SSMNIST runs use synthetic strokes (test_ssmnist_benchmark's data_root), so nothing is traced.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.api import build_trainer
from engine.config import load_config
from engine.syncs import count_host_syncs, syncs_per_step
from tests.test_ssmnist_benchmark import data_root, strokes  # noqa: F401  (fixtures)


def _mlp_cfg(method: str, log_every: int = 7, **opts: object):
    raw = {
        "seed": 2, "device": "cpu", "threads": 1,
        "benchmark": {"name": "split_mnist", "data": "embedded", "num_tasks": 3},
        "model": {"name": "mlp", "hidden": [32, 32]},
        "method": {"name": method, **opts},
        "training": {"steps_per_task": 30, "batch_size": 16, "log_every": log_every},
        "analyses": {"curves": {"enabled": False}}, "checkpoint": {"every_task": False, "every_seconds": 0.0},
    }
    return load_config(raw, "test")


def _lstm_cfg(method: str, log_every: int = 7, **opts: object):
    raw = {
        "seed": 2, "device": "cpu", "threads": 1,
        "benchmark": {"name": "ssmnist", "m": 2, "n_train": 64, "n_test": 16, "n_val": 0},
        "model": {"name": "lstm", "hidden": 8},
        "method": {"name": method, **opts},
        "training": {"steps_per_task": 30, "batch_size": 8, "log_every": log_every, "clip_grad_norm": 1.0},
        "analyses": {"curves": {"enabled": False}}, "checkpoint": {"every_task": False, "every_seconds": 0.0},
    }
    return load_config(raw, "test")


def _syncs_per_step(cfg, root: Path) -> tuple[list[int], list[int]]:  # noqa: ANN001
    """Host reads of each training step (engine/syncs.py), and the steps that end an epoch."""
    trainer, _ = build_trainer(cfg, root, lambda e: None)
    status, per_step, _ = syncs_per_step(trainer)
    assert status == "finished"
    assert "after_step" not in vars(trainer.method)  # the counting hook is gone again
    epoch_ends = [p.steps_per_epoch for p in trainer.plan]
    return per_step, epoch_ends


def _quiet_steps(per_step: list[int], log_every: int, steps_per_task: int, spe: int) -> list[int]:
    """Reads of the steps that follow neither a log step, an epoch end nor a phase end."""
    quiet = []
    for i, n in enumerate(per_step):
        prev = i + 1  # global step before this one (per_step[0] is global step 2)
        in_phase = prev % steps_per_task
        if prev % log_every == 0 or in_phase == 0 or in_phase % spe == 0:
            continue
        quiet.append(n)
    return quiet


@pytest.mark.parametrize("method,opts", [("finetune", {}), ("ewc", {"ewc_lambda": 10.0, "n_fisher": 20}),
                                         ("si", {})])
def test_no_host_sync_in_a_training_step_on_the_mlp(method: str, opts: dict) -> None:
    per_step, spe = _syncs_per_step(_mlp_cfg(method, **opts), Path("."))
    quiet = _quiet_steps(per_step, 7, 30, spe[0])
    assert len(quiet) > 40 and sum(quiet) == 0
    assert sum(per_step) > 0  # log steps do read back (the counter sees them)


@pytest.mark.parametrize("method,opts", [("finetune", {}), ("ewc", {"ewc_lambda": 10.0, "n_fisher": 10})])
def test_no_host_sync_in_a_training_step_on_the_lstm(method: str, opts: dict, data_root: Path) -> None:  # noqa: F811
    # The SSMNIST batch is cut to its longest sequence: read from host lengths, not the device.
    per_step, spe = _syncs_per_step(_lstm_cfg(method, **opts), data_root)
    quiet = _quiet_steps(per_step, 7, 30, spe[0])
    assert len(quiet) > 40 and sum(quiet) == 0


def test_the_counter_sees_a_device_read() -> None:
    x = torch.ones(3)
    with count_host_syncs() as c:
        int(x.sum())
        x.max().item()
        x.tolist()
    assert c.total == 3 and c.by_kind == {"__int__": 1, "item": 1, "tolist": 1}
    assert "item" not in torch.Tensor.__dict__  # restored


def _fisher_both(cfg, root: Path, task: int) -> tuple[dict, dict]:  # noqa: ANN001
    from engine.methods.ewc import EwcOptions

    trainer, _ = build_trainer(cfg, root, lambda e: None)
    trainer.run(stop_at_step=25)  # trained weights, not the initial ones
    m = trainer.method
    out = {}
    for impl in ("loop", "vmap"):
        m.opts = EwcOptions(n_fisher=24, fisher_impl=impl, fisher_chunk=10)
        m.ctx.generator("fisher").manual_seed(5)
        out[impl] = m.compute_fisher(task)
        assert m.fisher_impl_used == impl
    return out["loop"], out["vmap"]


def _assert_agree(loop: dict, vm: dict) -> None:
    for name, f in loop.items():
        assert f.abs().max() > 0, name
        # 1e-6 of the tensor's largest entry: float32 sums of the same squares in another order
        torch.testing.assert_close(vm[name], f, rtol=1e-6, atol=1e-6 * float(f.abs().max()))


def test_vmapped_fisher_equals_the_batch_1_fisher_on_the_mlp() -> None:
    _assert_agree(*_fisher_both(_mlp_cfg("ewc", n_fisher=24), Path("."), 0))


def test_vmapped_fisher_equals_the_batch_1_fisher_on_the_lstm(data_root: Path) -> None:  # noqa: F811
    _assert_agree(*_fisher_both(_lstm_cfg("ewc", n_fisher=24), data_root, 0))


def test_reference_lstm_gradients_equal_the_fused_path() -> None:
    from engine.models.lstm import lstm_fast, lstm_reference

    torch.manual_seed(0)
    w = [torch.randn(32, 4) * 0.3, torch.randn(32) * 0.1, torch.randn(32, 8) * 0.3, torch.randn(32) * 0.1]
    for p in w:
        p.requires_grad_(True)
    x, lengths = torch.randn(5, 40, 4), torch.tensor([40, 3, 17, 1, 29])
    grads = []
    for fn in (lstm_reference, lstm_fast):
        out = fn(x, lengths, w)
        grads.append(torch.autograd.grad(out.square().sum(), w))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("upper", ["none", "next", "all"])
def test_evaluation_upper_keeps_the_lower_triangle(upper: str) -> None:
    full, _ = build_trainer(load_config({**_raw_mlp(), "evaluation": {"upper": "all"}}, "test"), Path("."),
                            lambda e: None)
    full.run()
    part, _ = build_trainer(load_config({**_raw_mlp(), "evaluation": {"upper": upper}}, "test"), Path("."),
                            lambda e: None)
    part.run()
    lower = np.tril(np.ones_like(full.acc, dtype=bool))
    assert np.array_equal(part.acc[lower], full.acc[lower])  # the diagonal and below never change
    tested = ~np.isnan(part.acc)
    n = part.acc.shape[0]
    expected = {"none": lower, "all": np.ones_like(lower), "next": np.tri(n, k=1, dtype=bool)}[upper]
    assert np.array_equal(tested, expected)
    assert np.array_equal(part.acc[tested], full.acc[tested])
    if upper != "none":  # forward transfer needs acc[i, i+1] and the initial row
        a, b = part.metrics(), full.metrics()
        assert a.keys() == b.keys() and np.array_equal(list(a.values()), list(b.values()), equal_nan=True)


def _raw_mlp() -> dict:
    return {
        "seed": 2, "device": "cpu", "threads": 1,
        "benchmark": {"name": "split_mnist", "data": "embedded", "num_tasks": 3},
        "model": {"name": "mlp", "hidden": [32, 32]},
        "training": {"steps_per_task": 20, "batch_size": 16},
        "analyses": {"curves": {"enabled": False}}, "checkpoint": {"every_task": False, "every_seconds": 0.0},
    }


def test_curves_subset_is_sized_for_the_budget() -> None:
    from engine.analyses.curves import CurvesOptions, subset_size

    assert subset_size(CurvesOptions(), 128, 5) == 153  # 0.02 · 100 · 128 · 3 / 5
    assert subset_size(CurvesOptions(), 64, 5) == 100  # floor
    assert subset_size(CurvesOptions(every=1000), 128, 5) == 500  # ceiling
    assert subset_size(CurvesOptions(samples=42), 128, 5) == 42  # explicit wins


def test_bench_cli_on_embedded_data(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cltui.cli import app

    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "demo", "--steps", "3", "--repeats", "1", "--json", str(out),
                                   "--set", "model.hidden=[16]"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    (s,) = data["presets"]
    assert s["preset"] == "demo" and s["cltui"]["steps"] == s["bare"]["steps"] == 15
    assert s["cltui"]["cpu_min_s"] > 0 and s["bare"]["cpu_min_s"] > 0
    assert s["overhead_min"] == pytest.approx(s["bare"]["cpu_min_s"] / s["cltui"]["cpu_min_s"])
    assert set(s["cltui_share"]) == {"evaluation", "consolidation", "checkpoints", "logging"}
    assert s["cltui_share"]["evaluation"] > 0 and s["cltui_share"]["checkpoints"] > 0
    assert s["syncs"]["steps"] > 0 and s["syncs_per_step"] is not None
    assert "demo" in res.output and "bare/cltui" in res.output


def test_bench_refuses_an_unknown_preset() -> None:
    from typer.testing import CliRunner

    from cltui.cli import app

    res = CliRunner().invoke(app, ["bench", "no-such-preset", "--steps", "1", "--repeats", "1"])
    assert res.exit_code != 0 and "no-such-preset" in res.output and "Traceback" not in res.output


def test_run_index_serves_unchanged_runs_and_rereads_changed_ones(tmp_path: Path) -> None:
    from engine import run_index, store_read
    from engine.store import RunStore, RunWriter, read_run
    from tests.test_store import make

    for i in range(3):
        make(tmp_path / f"r{i}").close()
    store = RunStore(tmp_path)
    first = store.summaries()
    assert (tmp_path / run_index.INDEX_FILE).is_file()
    assert [r.run_id for r in first] == ["r0", "r1", "r2"]
    calls: list[Path] = []
    real = store_read.read_run

    def counting(run_dir: Path, with_series: bool = True):  # noqa: ANN202
        calls.append(run_dir)
        return real(run_dir, with_series=with_series)

    store_read.read_run = counting  # type: ignore[assignment]
    try:
        again = store.summaries()
        assert calls == []  # nothing changed: no run file opened
        w = RunWriter.reopen(tmp_path / "r1", {})
        w.set_status("finished")
        w.close()
        store.delete(tmp_path / "r2")
        third = store.summaries()
        assert calls == [tmp_path / "r1"]  # only the changed run is read again; the removed one is gone
    finally:
        store_read.read_run = real  # type: ignore[assignment]
    assert [r.status for r in again] == [r.status for r in first]
    assert [(r.run_id, r.status) for r in third] == [("r0", first[0].status), ("r1", "finished")]
    assert third[1].status == read_run(tmp_path / "r1", with_series=False).status
    (tmp_path / run_index.INDEX_FILE).write_bytes(b"not a pickle")  # a damaged index is rebuilt
    assert [r.run_id for r in store.summaries()] == ["r0", "r1"]
