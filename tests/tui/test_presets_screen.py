"""Presets screen: grouped list, `/` filter, details, live validation of overrides, launch."""

from __future__ import annotations

import re
from pathlib import Path

from textual.widgets import Input, Static, Tree

from cltui.tui.screens.live import LiveScreen
from cltui.tui.screens.presets import PresetsScreen

from .conftest import FakeExecutor, screen_text, wait_for, wait_text


def _leaves(app) -> list[str]:  # type: ignore[no-untyped-def]
    tree = app.screen.query_one("#preset-tree", Tree)
    out = []

    def walk(node) -> None:  # type: ignore[no-untyped-def]
        if node.data:
            out.append(node.data)
        for child in node.children:
            walk(child)

    walk(tree.root)
    return out


async def test_presets_grouped_by_benchmark_then_method(make_app, test_presets: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(start_mode="presets")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3, what="presets loaded")
        tree = app.screen.query_one("#preset-tree", Tree)
        benches = [str(n.label) for n in tree.root.children]
        assert benches == ["permuted_mnist", "split_mnist"]
        assert [str(n.label) for n in tree.root.children[1].children] == ["ewc", "finetune"]
        # The first preset's details: reference result and its source, and the TOML.
        text = await wait_text(pilot, "reference  during — · final —")
        assert "permuted-mnist/si" in text and 'name = "si"' in text


async def test_slash_filters_and_highlight_shows_reference(make_app, test_presets: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(start_mode="presets")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        await pilot.press("slash", *"ewc")
        await wait_for(pilot, lambda: _leaves(app) == ["split-mnist/ewc"], what="filtered to ewc")
        text = await wait_text(pilot, "Test et al. 2020")
        assert "during 99.12 · final 97.50" in text
        assert "steps_per_task = 50" in text  # the TOML
        await pilot.press("escape")  # clears the filter and returns to the list
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        assert app.screen.focused is app.screen.query_one("#preset-tree")


async def test_details_list_every_option_with_its_help(make_app, test_presets: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(start_mode="presets")
    async with app.run_test(size=(140, 80)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        await pilot.press("slash", *"ewc")
        await wait_for(pilot, lambda: _leaves(app) == ["split-mnist/ewc"])
        # The method's own options, with the help their dataclass declares, beside the TOML.
        text = await wait_text(pilot, "method.ewc_lambda")
        assert "online decay γ" in text and "method.fisher_chunk" in text
        assert "model.hidden" in text and "widths of the hidden layers" in text


async def test_bad_override_shows_the_config_error_and_blocks_launch(make_app, test_presets: Path,  # type: ignore[no-untyped-def]
                                                                     executor: FakeExecutor) -> None:
    app = make_app(start_mode="presets")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        await pilot.press("o", *"training.lrr=0.1")
        status = app.screen.query_one("#override-status", Static)
        await wait_text(pilot, "✗")
        line = str(status.render())
        assert "✗ override: unknown key 'training.lrr'. Closest valid keys: training.lr." in line, line
        assert app.screen.query_one("#launch").disabled
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert executor.submitted == [] and isinstance(app.screen, PresetsScreen)
        # Wrong type, then fixed: the error goes away.
        app.screen.query_one("#overrides", Input).value = "training.lr=abc"
        await wait_text(pilot, "✗")
        app.screen.query_one("#overrides", Input).value = "training.lr=0.01"
        await wait_text(pilot, "lr 0.01")
        assert "✗" not in str(status.render())


async def test_launch_submits_the_planned_run_and_opens_it_live(make_app, test_presets: Path,  # type: ignore[no-untyped-def]
                                                                executor: FakeExecutor, runs_dir: Path) -> None:
    app = make_app(start_mode="presets")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        await pilot.press("slash", *"split-mnist/ewc", "enter")  # filter, back to the list
        await pilot.press("enter")  # choose the preset: focus goes to the overrides
        await pilot.press(*"training.lr=0.005 seed=7", "enter")
        await wait_for(pilot, lambda: len(executor.submitted) == 1, what="launch")
        (run,) = executor.submitted
        cfg = run.config
        assert cfg.name == "split-mnist/ewc" and cfg.method.name == "ewc"
        assert cfg.training.lr == 0.005 and cfg.seed == 7 and cfg.training.steps_per_task == 50
        assert run.group == "" and run.overrides == ("training.lr=0.005",)  # the seed is in the id, not the hash
        assert isinstance(app.screen, LiveScreen)
        text = await wait_text(pilot, "launched-1")
        assert "split-mnist/ewc · split_mnist · ewc" in text


async def test_launch_several_seeds_as_one_group(make_app, test_presets: Path, executor: FakeExecutor) -> None:  # type: ignore[no-untyped-def]
    app = make_app(start_mode="presets")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        app.screen.query_one("#seeds", Input).value = "3"
        await pilot.press("l")
        await wait_for(pilot, lambda: len(executor.submitted) == 3, what="three launches")
        assert sorted(r.config.seed for r in executor.submitted) == [0, 1, 2]  # submitted together
        groups = {r.group for r in executor.submitted}
        assert len(groups) == 1 and re.fullmatch(r"\d{8}-\d{6}-permuted-mnist-si-x3-[0-9a-f]{4}", groups.pop())


async def test_launch_failure_is_shown_and_the_app_stays_up(make_app, test_presets: Path,  # type: ignore[no-untyped-def]
                                                            executor: FakeExecutor) -> None:
    executor.fail_with = "CUDA was requested but no GPU is visible to torch here; use --device cpu"
    app = make_app(start_mode="presets")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        await pilot.press("l")
        await wait_text(pilot, "no GPU is visible")
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))


async def test_shipped_presets_all_load_and_validate(make_app) -> None:  # type: ignore[no-untyped-def]
    from engine.presets import preset_names

    app = make_app(start_mode="presets")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == len(preset_names()))
        assert "demo" in _leaves(app)
        assert "✗" not in screen_text(app)


async def test_a_real_engine_error_reaches_the_screen_as_data(test_presets: Path, runs_dir: Path, tmp_path: Path,
                                                             monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The real executor: the engine process fails before its run exists (no MNIST files, offline) and
    its one-line structured error is what the Live screen shows; nothing is stored."""
    from cltui.tui.app import create_app
    from cltui.tui.services import Settings
    from engine.executor import LocalExecutor
    from engine.store import RunStore

    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # the child inherits it: no mirror answers
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    # The child reads the presets folder through its resolved config, so the test presets need no patching there.
    settings = Settings(runs_dir=runs_dir, data_dir=str(tmp_path / "no-data"), runs_poll=0.1, live_poll=0.05,
                        start_mode="presets")
    app = create_app(RunStore(runs_dir), LocalExecutor(runs_dir, settings.data_dir, detach=True), settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        await pilot.press("slash", *"split-mnist/finetune", "enter")
        await pilot.press("enter")
        await pilot.press(*"training.steps_per_task=5", "enter")
        text = await wait_text(pilot, "could not start", timeout=120)
        assert "MNIST files missing in" in text and "Traceback" not in text
    assert list(runs_dir.iterdir()) == []
