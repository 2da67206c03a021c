"""Named random streams: reproducible per name, saved and restored whole, and independent of each other.

The independence tests inject an extra draw at every training step into one named stream and
check that a run that never reads that stream stays bit-identical (weights and accuracy matrix);
the controls show the same check fails when the draw goes to the global torch RNG or to a stream
the run does read, so the test can fail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.api import build_trainer
from engine.methods.base import Method
from engine.rng import Streams, stream_generator
from tests.conftest import tiny

torch.set_num_threads(1)


def test_a_stream_is_reproducible_per_name_and_distinct_across_names() -> None:
    a, b = Streams(3), Streams(3)
    assert torch.equal(torch.rand(5, generator=a.get("fisher")), torch.rand(5, generator=b.get("fisher")))
    assert not torch.equal(torch.rand(5, generator=a.get("mix")), torch.rand(5, generator=a.get("sampler/0")))
    assert not torch.equal(torch.rand(5, generator=Streams(4).get("mix")), torch.rand(5, generator=Streams(3).get("mix")))
    assert a.get("fisher") is a.get("fisher")  # one generator per name, made on first use
    assert torch.equal(torch.rand(3, generator=Streams(9).get("x")), torch.rand(3, generator=stream_generator(9, "x")))


def test_state_round_trip_restores_every_stream_and_leaves_new_ones_fresh() -> None:
    s = Streams(1)
    torch.rand(4, generator=s.get("a"))
    torch.rand(2, generator=s.get("b"))
    state = s.state_dict()
    after = (torch.rand(3, generator=s.get("a")), torch.rand(3, generator=s.get("b")))
    t = Streams(1)
    torch.rand(7, generator=t.get("a"))  # whatever happened before the load does not matter
    t.load_state_dict(state)
    assert torch.equal(torch.rand(3, generator=t.get("a")), after[0])
    assert torch.equal(torch.rand(3, generator=t.get("b")), after[1])
    assert torch.equal(torch.rand(3, generator=t.get("c")), torch.rand(3, generator=Streams(1).get("c")))
    with pytest.raises(ValueError, match="seed"):
        Streams(2).load_state_dict(state)


def _run(cfg, inject: Callable[[Method], None] | None, monkeypatch: pytest.MonkeyPatch):
    """Train `cfg` in memory; `inject(method)` runs after every optimizer step. Returns (weights, acc)."""
    with monkeypatch.context() as m:
        if inject is not None:
            original = Method.after_step

            def after_step(self: Method, phase: int, tasks: list[int]) -> None:
                original(self, phase, tasks)
                inject(self)

            m.setattr(Method, "after_step", after_step)
        trainer, _ = build_trainer(cfg, Path("."), lambda e: None)
        assert trainer.run() == "finished"
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}, trainer.acc.copy()


def _same(a, b) -> bool:
    return all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and np.array_equal(a[1], b[1], equal_nan=True)


def _draw(stream: str) -> Callable[[Method], None]:
    return lambda method: torch.rand(3, generator=method.ctx.generator(stream))


def _global_draw(method: Method) -> None:
    torch.rand(3)


# scratch re-initialises its network from the global torch RNG ("training"), so a global draw shows up;
# ewc reads the "fisher" stream (and the samplers), so a draw there shows up.
CASES = [
    ("finetune", "analysis/probe", None),
    ("scratch", "fisher", _global_draw),
    ("ewc", "coresets/replay", _draw("fisher")),
    ("coresets", "fisher", _draw("coresets/select")),
]


@pytest.mark.parametrize(("method", "other_stream", "control"), CASES, ids=[c[0] for c in CASES])
def test_a_draw_in_another_stream_leaves_the_run_bit_identical(
    method: str, other_stream: str, control: Callable[[Method], None] | None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = ["method.n_fisher=30"] if method == "ewc" else ["method.coreset_size=20"] if method == "coresets" else []
    cfg = tiny("analyses.curves.enabled=false", *extra, method=method, steps=12)
    plain = _run(cfg, None, monkeypatch)
    assert _same(plain, _run(cfg, _draw(other_stream), monkeypatch))
    if control is not None:  # the same comparison does notice a draw in a stream this run reads
        assert not _same(plain, _run(cfg, control, monkeypatch))


def test_the_batch_order_moves_only_with_its_own_sampler_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """50 training images per task and batches of 32: a reshuffle every other step reads "sampler/<task>"."""
    cfg = tiny("analyses.curves.enabled=false", "benchmark.train_per_task=50", steps=12)
    plain = _run(cfg, None, monkeypatch)
    assert _same(plain, _run(cfg, _draw("mix"), monkeypatch))  # mixing is multitask's stream
    assert not _same(plain, _run(cfg, _draw("sampler/1"), monkeypatch))


def test_global_rng_from_stream_draws_by_name_and_leaves_the_global_rng_alone() -> None:
    """head_reset / retrained re-initialise through torch's init functions inside this block: their
    draws must depend only on (seed, name), and the global RNG must come out untouched."""
    import torch

    from engine.rng import global_rng_from_stream

    cpu = torch.device("cpu")
    draws = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        before = torch.random.get_rng_state()
        with global_rng_from_stream(7, "head_reset/1", cpu):
            draws.append(torch.randn(5))
        assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(draws[0], draws[1])
    with global_rng_from_stream(7, "head_reset/2", cpu):
        assert not torch.equal(torch.randn(5), draws[0])
