"""Live screen: a run with task inference (evaluation.task_inference h/g) shows its inference rows."""

from __future__ import annotations

from pathlib import Path

from engine import events as ev
from engine.series import CURVES, TRAINING_SERIES, SeriesSpec
from engine.store import RunWriter

from .conftest import SyntheticRun, config, wait_text


async def test_live_view_shows_task_inference_beside_the_given_accuracy(make_app, runs_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    n = 3
    series = [*TRAINING_SERIES, SeriesSpec(CURVES, (n,), cadence="curve"),
              SeriesSpec("phase_steps", dtype="i8", cadence="phase"),
              SeriesSpec("inferred_task_acc", (n,), cadence="phase"), SeriesSpec("inference_acc", (n,), cadence="phase")]
    w = RunWriter.create(runs_dir / "sup", run_id="sup", config=config("supsup", n_tasks=n),
                         environment={"device": "cpu", "device_name": "test"}, task_names=["T1", "T2", "T3"],
                         phase_tasks=[[k] for k in range(n)], phase_steps=[100] * n, series=series)
    run = SyntheticRun(w, n, 100, 0, 0.0)
    run.acc = np.full((n, n), np.nan)
    app = make_app(start_mode="live")
    async with app.run_test(size=(120, 50)) as pilot:
        await wait_text(pilot, "sup  running")
        for phase in range(n):
            run.step_events(phase)
            run.finish_phase(phase)
            w(ev.SeriesPoint("phase_steps", (phase + 1) * 100, 100))
        # After 3 tasks: task 3's batches half mis-inferred, so its images half counted wrong.
        w(ev.SeriesPoint("inferred_task_acc", 300, [100.0, 100.0, 50.0]))
        w(ev.SeriesPoint("inference_acc", 300, [99.0, 98.5, 49.0]))
        w.flush(force=True)
        text = await wait_text(pilot, "task inference")
        means = [83.33, (99.0 + 98.5 + 49.0) / 3, (99.0 + 98.5 + 98.0) / 3]  # given: acc[2] with forget 0
        assert all(f"{m:.1f}" in text for m in means), text
