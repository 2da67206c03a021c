"""The CLI through Typer's CliRunner: what the engine receives, real tiny runs, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cltui.cli import app
from engine.executor import LocalExecutor
from engine.planning import PlannedRun

runner = CliRunner()
FAST = ["--set", "training.steps_per_task=5", "--set", "analyses.curves.every=5", "--no-live"]


def invoke(*args: str):  # noqa: ANN201
    return runner.invoke(app, list(args), catch_exceptions=False)


def one_line_error(result, text: str) -> None:  # noqa: ANN001
    out = result.output
    assert result.exit_code != 0
    assert text in out, out
    assert "Traceback" not in out


def test_run_passes_overrides_seed_and_device_to_the_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    got: list[tuple[LocalExecutor, PlannedRun]] = []

    def fake_submit(self: LocalExecutor, run: PlannedRun, stop_at_step: int | None = None) -> None:
        got.append((self, run))
        raise SystemExit(0)

    monkeypatch.setattr(LocalExecutor, "submit", fake_submit)
    r = runner.invoke(app, ["run", "demo", "--set", "training.lr=0.05", "--set", "model.hidden=[7]", "--seed", "4",
                            "--device", "cpu", "--runs-dir", str(tmp_path), "--data-dir", "/data"])
    assert r.exit_code == 0
    ((executor, run),) = got
    cfg = run.config
    assert cfg.training.lr == 0.05 and cfg.model.options.hidden == [7] and cfg.seed == 4 and cfg.device == "cpu"
    assert executor.runs_dir == tmp_path.absolute() and executor.data_dir == "/data" and run.group == ""
    assert run.overrides == ("training.lr=0.05", "model.hidden=[7]")


def test_seeds_and_grid_are_planned_by_the_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    got: list[PlannedRun] = []

    def fake_submit(self: LocalExecutor, run: PlannedRun, stop_at_step: int | None = None) -> None:
        got.append(run)
        raise RuntimeError("stop after planning")

    monkeypatch.setattr(LocalExecutor, "submit", fake_submit)
    # The first submit raises, so only the plan's first run is seen; the printed groups show the rest.
    r = runner.invoke(app, ["run", "demo", "--seeds", "2", "--grid", "training.lr=0.1,0.01", "--runs-dir", str(tmp_path)])
    assert isinstance(r.exception, RuntimeError)
    assert got[0].config.training.lr == 0.1 and got[0].config.seed == 0 and got[0].group
    assert r.output.count("seed group") == 2 and "training.lr=0.01" in r.output


def test_presets_list_filter_and_show() -> None:
    r = invoke("presets")
    assert r.exit_code == 0 and "demo" in r.output and "split-mnist/finetune" in r.output
    r = invoke("presets", "--method", "multitask")
    assert "split-mnist/multitask" in r.output and "split-mnist/finetune " not in r.output
    r = invoke("presets", "show", "demo")
    assert r.exit_code == 0 and "[benchmark]" in r.output and '"steps_per_task": 200' in r.output
    # Every option with the help text its dataclass declares, component options included.
    assert "model.hidden" in r.output and "widths of the hidden layers" in r.output
    assert "benchmark.scenario" in r.output and "training.lr" in r.output and "learning rate" in r.output
    one_line_error(invoke("presets", "show", "dem"), "Did you mean 'demo'")


@pytest.mark.parametrize(
    "args, text",
    [
        (["run", "split-mnist/finetun"], "unknown preset 'split-mnist/finetun'. Did you mean"),
        (["run", "demo", "--set", "training.lrr=1"], "--set: unknown key 'training.lrr'"),
        (["run", "demo", "--set", "training.lr=fast"], "should be float"),
        (["resume", "nope"], "no run 'nope'"),
        (["show", "nope"], "no run 'nope'"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], text: str) -> None:
    one_line_error(invoke(*args, "--runs-dir", str(tmp_path)), text)


def test_unwritable_runs_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(invoke("run", "demo", "--runs-dir", str(blocker / "runs")), "is not writable")


def test_cuda_requested_without_gpu(tmp_path: Path) -> None:
    import torch

    r = invoke("run", "demo", "--device", "cuda", "--runs-dir", str(tmp_path), *FAST)
    if torch.cuda.is_available():
        assert r.exit_code == 0
    else:
        one_line_error(r, "CUDA was requested but no GPU is visible")
        assert list(tmp_path.iterdir()) == []  # nothing stored


def test_missing_data_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLTUI_DATA_DIR", str(tmp_path / "data"))
    # The child process inherits this: no mirror can answer, as on an offline machine.
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    r = invoke("run", "split-mnist/finetune", "--runs-dir", str(tmp_path / "runs"), *FAST)
    one_line_error(r, "MNIST files missing in")
    assert not any((tmp_path / "runs").iterdir())


def test_real_run_then_runs_show_export_resume(tmp_path: Path) -> None:
    rd = str(tmp_path)
    r = invoke("run", "demo", "--runs-dir", rd, *FAST)
    assert r.exit_code == 0, r.output
    assert "accuracy %" in r.output and "final" in r.output
    (run_id,) = [p.name for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    r = invoke("runs", "--runs-dir", rd)
    assert run_id[:20] in r.output and "finished" in r.output
    r = invoke("show", run_id, "--runs-dir", rd)
    assert "during" in r.output and '"steps_per_task": 5' in r.output
    r = invoke("export", run_id, "--format", "csv", "--runs-dir", rd)
    lines = r.output.strip().splitlines()
    assert lines[0] == "after_phase,0/1,2/3,4/5,6/7,8/9" and len(lines) == 6
    r = invoke("export", run_id, "--format", "json", "--runs-dir", rd)
    data = json.loads(r.output)
    assert data["status"] == "finished" and len(data["acc"]) == 5 and data["metrics"]["final"] > 0
    # every recorded series travels, with its declaration: training scalars, curves, phase records
    series = data["series"]
    assert {"loss", "lr", "curves", "epoch_train_acc", "phase_steps", "phase_stop"} <= set(series)
    assert series["phase_steps"]["value"] == [5] * 5 and series["phase_stop"]["cadence"] == "phase"
    assert len(series["curves"]["value"][0]) == 5 and series["curves"]["value"][0][1] is None  # task 2 unseen
    one_line_error(invoke("resume", run_id, "--runs-dir", rd), "already finished")


def test_interrupted_run_resumes_from_the_cli(tmp_path: Path) -> None:
    from engine.presets import load_preset

    # No checkpoint on interrupt: the last one is at the end of task 2 (step 10), before the stop at 12.
    cfg = load_preset("demo", ["training.steps_per_task=5", "analyses.curves.enabled=false", "checkpoint.on_interrupt=false"])
    handle = LocalExecutor(tmp_path).submit(PlannedRun(cfg), stop_at_step=12)
    assert handle.proc is not None and handle.proc.wait() == 3  # interrupted
    r = invoke("runs", "--runs-dir", str(tmp_path))
    assert "interrupted" in r.output
    r = invoke("resume", handle.run_id, "--runs-dir", str(tmp_path), "--no-live")
    assert r.exit_code == 0, r.output
    # The resume starts from the checkpoint's step, not the step where the run stopped.
    assert f"{handle.run_id}: resumes from step 10" in r.output
    assert "finished" in invoke("runs", "--runs-dir", str(tmp_path)).output


def test_seed_group_shows_mean_and_std(tmp_path: Path) -> None:
    r = invoke("run", "demo", "--seeds", "2", "--runs-dir", str(tmp_path), *FAST)
    assert r.exit_code == 0, r.output
    assert "seed group" in r.output and "±" in r.output


def test_resume_of_a_run_being_written_names_its_writer(tmp_path: Path) -> None:
    import os

    from engine.series import TRAINING_SERIES
    from engine.store import RunWriter

    config = {"name": "x", "seed": 0, "benchmark": {"name": "b"}, "method": {"name": "m"}, "model": {"name": "x"}}
    w = RunWriter.create(tmp_path / "busy", run_id="busy", config=config, environment={}, task_names=["a"],
                         phase_tasks=[[0]], phase_steps=[5], series=TRAINING_SERIES)  # holds the writer lock
    try:
        one_line_error(invoke("resume", "busy", "--runs-dir", str(tmp_path)),
                       f"run busy is still running (pid {os.getpid()} on ")
    finally:
        w.close()
