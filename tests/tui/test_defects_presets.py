"""Issue 15 defects on the Presets screen, each replayed with the key sequence that broke it:
focus returning into a text box, footer hints that did not match focus, a stale "no preset matches"
header, errors caused by an override blamed on the preset file, and unverified or internal sources."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Tree

from cltui.tui.screens.presets import PresetsScreen
from cltui.tui.screens.runs import RunsScreen

from .conftest import FakeExecutor, screen_text, wait_for, wait_text
from .test_presets_screen import _leaves


def _footer_keys(app) -> set[str]:  # type: ignore[no-untyped-def]
    """The actions the footer shows for the focused widget (what check_action lets through)."""
    return {b.action for (_, b, enabled, _) in app.screen.active_bindings.values()
            if b.show and enabled and app.screen.check_action(b.action, ()) is not False}


async def test_returning_to_presets_leaves_digits_to_the_screens(make_app, test_presets: Path,  # type: ignore[no-untyped-def]
                                                                   executor: FakeExecutor) -> None:
    app = make_app(start_mode="presets")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        seeds = app.screen.query_one("#seeds", Input)
        seeds.focus()
        seeds.value = ""
        await pilot.press("2")  # what a user does: seeds 2, then looks at the runs
        await wait_for(pilot, lambda: seeds.value == "2")
        app.switch_mode("runs")  # (2 cannot leave a text box: it types; the app switches from elsewhere)
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("1", "2", "1")  # "1 2 1 2" used to turn seeds 2 into 22
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))
        assert isinstance(app.screen.focused, Tree)
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("1")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))
        assert seeds.value == "2" and executor.submitted == []  # nothing typed, nothing launched


async def test_footer_hints_follow_focus(make_app, test_presets: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(start_mode="presets")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        assert {"launch", "filter"} <= _footer_keys(app) and "leave_input" not in _footer_keys(app)
        await pilot.press("o")  # into the overrides box: l would type, so the footer must not offer it
        await wait_for(pilot, lambda: isinstance(app.screen.focused, Input))
        keys = _footer_keys(app)
        assert "launch" not in keys and "filter" not in keys and "leave_input" in keys
        assert "Back to list" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen.focused, Tree))
        assert "launch" in _footer_keys(app)


async def test_header_comes_back_after_a_filter_that_matched_nothing(make_app, test_presets: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(start_mode="presets")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        await pilot.press("slash", *"zzz")
        await wait_text(pilot, "no preset matches")
        await pilot.press("backspace", "backspace", "backspace")
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        text = await wait_text(pilot, "reference  ")
        assert "no preset matches" not in text


async def test_error_caused_by_an_override_names_the_override(make_app, test_presets: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(start_mode="presets")
    async with app.run_test(size=(140, 30)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        await pilot.press("slash", *"ewc", "enter")
        await wait_for(pilot, lambda: _leaves(app) == ["split-mnist/ewc"])
        await pilot.press("o", *"model.name=lstm model.hidden=[100,100]")
        text = await wait_text(pilot, "✗")
        line = next(ln for ln in text.splitlines() if "✗" in ln)
        assert "override" in line and "model.hidden" in line, line


async def test_source_in_words_unverified_labelled_no_spec_references(make_app, test_presets: Path) -> None:  # type: ignore[no-untyped-def]
    (test_presets / "split-mnist" / "ewc.toml").write_text(
        (test_presets / "split-mnist" / "ewc.toml").read_text().replace(
            'source = "Test et al. 2020, table 1"',
            'source = "Test et al. 2020, defaults (spec §8)"\nnotes = "The 99.12 is from memory and unverified (spec §8)."'))
    app = make_app(start_mode="presets")
    async with app.run_test(size=(140, 30)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        await pilot.press("slash", *"ewc", "enter")
        text = await wait_text(pilot, "source     unverified · Test et al. 2020, defaults")
        head = text.split("file ")[0]
        assert "§" not in head and "spec" not in head


async def test_seed_group_starts_together(make_app, test_presets: Path, executor: FakeExecutor) -> None:  # type: ignore[no-untyped-def]
    import threading

    # Each submit waits until all three are submitting: one after another, the barrier would break.
    executor.barrier = threading.Barrier(3, timeout=5)
    app = make_app(start_mode="presets")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(_leaves(app)) == 3)
        app.screen.query_one("#seeds", Input).value = "3"
        await pilot.press("l")
        await wait_for(pilot, lambda: len(executor.submitted) == 3, what="three launches")
        assert not executor.barrier.broken and app.launch_failures == []
