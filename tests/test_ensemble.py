"""Batched ensembles (engine/ensemble.py): each member equals the same config run alone, bit for bit
on CPU (records, accuracy matrices, final checkpoints), also when some steps cannot be batched, and a
member stopped inside an ensemble resumes alone to the solo result."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import assert_same_final_state, assert_same_series, tiny


def _solo_and_ensemble(cfgs, tmp_path: Path, stop_at_step: int | None = None):  # noqa: ANN001, ANN202
    import numpy as np

    from engine import api
    from engine.ensemble import EnsembleRun, run_ensemble

    solos = [api.run(c, tmp_path / "solo") for c in cfgs]
    together = run_ensemble([EnsembleRun(c) for c in cfgs], tmp_path / "ens", stop_at_step=stop_at_step)
    for s, e in zip(solos, together):
        assert s.status == "finished", s.error
        if stop_at_step is None:
            assert e.status == "finished", e.error
            assert np.array_equal(s.acc, e.acc, equal_nan=True)
            assert_same_series(s.run_dir, e.run_dir)
            assert_same_final_state(s.run_dir, e.run_dir)
    return solos, together


@pytest.mark.parametrize("method", ["finetune", "ewc", "si"])
def test_members_equal_their_solo_runs(method: str, tmp_path: Path) -> None:
    from engine.store import read_run

    cfgs = [replace(tiny("checkpoint.every_task=true", "model.hidden=[32,32]", method=method), seed=s)
            for s in (1, 2, 3)]
    _, together = _solo_and_ensemble(cfgs, tmp_path)
    env = read_run(together[0].run_dir, with_series=False).environment
    assert env["ensemble"]["batched"] is True, env["ensemble"]  # the batched path really ran
    assert env["ensemble"]["members"] == [r.run_id for r in together]


def test_unbatchable_steps_run_member_by_member_and_stay_exact(tmp_path: Path) -> None:
    # multitask trains mixed batches (several groups per step): never batched; dropout draws from each
    # member's own global RNG, which the ensemble swaps in around each member's code.
    cfgs = [replace(tiny("checkpoint.every_task=true", method="multitask"), seed=s) for s in (1, 2)]
    cfgs += [replace(tiny("checkpoint.every_task=true", "model.dropout=0.2"), seed=s) for s in (3, 4)]
    for pair in (cfgs[:2], cfgs[2:]):
        _solo_and_ensemble(pair, tmp_path / pair[0].method.name)


def test_members_may_differ_in_learning_rate(tmp_path: Path) -> None:
    cfgs = [tiny("checkpoint.every_task=true", f"training.lr={lr}") for lr in (0.01, 0.001)]
    cfgs = [replace(c, seed=7) for c in cfgs]
    from engine import api
    from engine.ensemble import EnsembleRun, run_ensemble

    solos = [api.run(c, tmp_path / "solo", overrides=[f"training.lr={c.training.lr}"]) for c in cfgs]
    together = run_ensemble([EnsembleRun(c, overrides=(f"training.lr={c.training.lr}",)) for c in cfgs],
                            tmp_path / "ens")
    for s, e in zip(solos, together):
        assert_same_series(s.run_dir, e.run_dir)
        assert_same_final_state(s.run_dir, e.run_dir)


def test_a_member_stopped_in_an_ensemble_resumes_alone_to_its_solo_result(tmp_path: Path) -> None:
    from engine import api

    cfgs = [replace(tiny("checkpoint.every_task=true", method="ewc"), seed=s) for s in (1, 2)]
    solos, together = _solo_and_ensemble(cfgs, tmp_path, stop_at_step=27)
    for s, e in zip(solos, together):
        assert e.status == "interrupted"
        resumed = api.resume(e.run_id, tmp_path / "ens")
        assert resumed.status == "finished", resumed.error
        assert_same_series(s.run_dir, resumed.run_dir)
        assert_same_final_state(s.run_dir, resumed.run_dir)


def test_members_that_cannot_share_a_process_are_refused(tmp_path: Path) -> None:
    from engine.ensemble import EnsembleRun, run_ensemble
    from engine.errors import ConfigError

    a, b = tiny(), tiny("model.hidden=[16]")
    with pytest.raises(ConfigError, match="must share 'model'"):
        run_ensemble([EnsembleRun(a), EnsembleRun(b)], tmp_path)
    assert not any(tmp_path.iterdir())  # nothing claimed


def test_probe_finds_a_batched_forward_that_is_not_exact() -> None:
    import torch

    from engine.benchmarks.base import InputSpec
    from engine.ensemble import StackedMLP
    from engine.models.mlp import MLP, MlpOptions

    # Whether the plain batched forward is exact depends on the BLAS and the shapes (tiny GEMMs take
    # another kernel): the ensemble tests above assert it was on theirs. A forward off by one
    # rounding step must always be caught.
    models = [MLP(MlpOptions(hidden=[16]), InputSpec((8,), 4)) for _ in range(2)]

    class Skewed(StackedMLP):  # a batched forward that is off by one rounding step
        def forward(self, xs: torch.Tensor) -> list[torch.Tensor]:
            return [o * (1 + 2 ** -20) for o in super().forward(xs)]

    assert "logits" in (Skewed(models).probe(5, torch.Generator().manual_seed(0)) or "")


def test_an_ensemble_through_the_local_executor_equals_its_solo_runs(tmp_path: Path) -> None:
    """`python -m engine ensemble` in a child: one announcement per member, one handle each, the
    records equal to the same seeds started one by one; a bad member config fails before anything."""
    from engine.executor import LocalExecutor, RunStartError, run_all, run_together
    from engine.planning import plan

    tiny_ = ["benchmark.num_tasks=2", "model.hidden=[16]", "training.steps_per_task=10", "training.batch_size=16",
             "analyses.curves.every=5", "analyses.curves.samples=20", "training.log_every=5"]
    runs = plan("demo", tiny_, 3)
    ex = LocalExecutor(tmp_path / "ens")
    outs = run_together(ex, runs)
    assert [o.status for o in outs] == ["finished"] * 3, [o.error for o in outs]
    solo = run_all(LocalExecutor(tmp_path / "solo"), plan("demo", tiny_, 3))
    by_seed = {o.run.config.seed: o.handle.run_dir for o in solo if o.run and o.handle}
    for o in outs:
        assert o.run is not None and o.handle is not None
        assert o.handle.run_dir.parent == tmp_path / "ens"
        assert_same_series(by_seed[o.run.config.seed], o.handle.run_dir)
    mixed = plan("demo", tiny_, 1) + plan("demo", [*tiny_, "model.hidden=[8]"], 1)
    with pytest.raises(RunStartError, match="must share 'model'"):
        ex.submit_ensemble(mixed)


def test_sigterm_stops_every_member_with_a_checkpoint_and_each_resumes(tmp_path: Path) -> None:
    import time

    from engine import api
    from engine.executor import LocalExecutor
    from engine.planning import plan
    from engine.store import read_run

    runs = plan("demo", ["benchmark.num_tasks=2", "model.hidden=[16]", "training.steps_per_task=100000",
                         "training.batch_size=16", "analyses.curves.enabled=false", "training.log_every=5"], 2)
    ex = LocalExecutor(tmp_path)
    handles = ex.submit_ensemble(runs)
    try:
        deadline = time.time() + 120
        while min(read_run(h.run_dir, with_series=False).progress[0] for h in handles) < 10:
            assert time.time() < deadline
            time.sleep(0.1)
        ex.stop(handles[0])  # one process: every member stops
        assert handles[0].proc is not None and handles[0].proc.wait(120) == 3
        assert [ex.poll(h) for h in handles] == ["interrupted", "interrupted"]
        steps = [read_run(h.run_dir, with_series=False).progress[0] for h in handles]
        assert steps[0] == steps[1]  # lockstep: both stopped at the same step
        for h in handles:  # each member resumes alone, from its own checkpoint
            res = api.resume(h.run_id, tmp_path, stop_at_step=steps[0] + 5)
            assert res.status == "interrupted" and read_run(h.run_dir, with_series=False).progress[0] == steps[0] + 5
    finally:
        for h in handles:
            if h.proc is not None and h.proc.poll() is None:
                h.proc.kill()


def test_config_reason_names_what_keeps_a_preset_from_batching() -> None:
    from engine.ensemble import config_reason
    from engine.presets import load_preset

    assert config_reason(load_preset("split-mnist/ewc")) is None
    assert "lstm" in (config_reason(load_preset("ssmnist/ewc-m1")) or "")
    assert "own forward" in (config_reason(load_preset("split-mnist/hnet")) or "")
    assert "mixed batches" in (config_reason(tiny(method="multitask")) or "")
    assert "Dropout" in (config_reason(tiny("model.dropout=0.1")) or "")


def test_bench_ensemble_reports_throughput_and_equality_on_embedded_data(tmp_path: Path) -> None:
    """`cltui bench --ensemble`: one row per (N, mode), the ensemble's members equal to the solo runs.
    Behaviour only: no timing is asserted."""
    import json

    from typer.testing import CliRunner

    from cltui.cli import app

    out = tmp_path / "ens.json"
    res = CliRunner().invoke(app, ["bench", "demo", "--ensemble", "2", "--steps", "4", "--json", str(out),
                                   "--set", "model.hidden=[32]"])
    assert res.exit_code == 0, res.output
    (p,) = json.loads(out.read_text())["presets"]
    rows = {(r["n"], r["mode"]): r for r in p["rows"]}
    assert set(rows) == {(1, "processes"), (1, "ensemble"), (2, "processes"), (2, "ensemble")}
    assert rows[(2, "ensemble")]["exact"] is True and rows[(1, "ensemble")]["exact"] is True
    assert all(r["runs_steps_per_s"] > 0 and r["speedup"] is not None for r in rows.values())
    assert "runs×steps/s" in res.output
    bad = CliRunner().invoke(app, ["bench", "demo", "--ensemble", "two"])
    assert bad.exit_code != 0 and "give run counts separated by commas" in bad.output


def test_cli_run_ensemble_and_its_fallback_to_processes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cltui.cli import app
    from engine.store import read_run

    small = ["--set", "benchmark.num_tasks=2", "--set", "model.hidden=[16]", "--set", "training.steps_per_task=5",
             "--runs-dir", str(tmp_path)]
    res = CliRunner().invoke(app, ["run", "demo", "--seeds", "2", "--ensemble", *small])
    assert res.exit_code == 0, res.output
    assert "2 runs in one process" in res.output
    recs = [read_run(d, with_series=False) for d in tmp_path.iterdir() if (d / "run.h5").is_file()]
    assert len(recs) == 2 and all(r.environment["ensemble"]["members"] for r in recs)
    res = CliRunner().invoke(app, ["run", "demo", "--seeds", "2", "--ensemble", "--set", "method.name=multitask", *small])
    assert res.exit_code == 0, res.output
    assert "trains mixed batches of several tasks, so its forwards cannot batch; starting 2 processes" in res.output
