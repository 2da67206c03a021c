"""One module per screen: presets, runs, live, compare, plus the help and confirmation modals.

The app's four modes name their screens here by module path, so that a screen's module is imported
when its mode is first shown, not when the app starts (the Live and Compare screens bring numpy, h5py
and plotext; the first screen, Runs or Presets, needs none of them). Textual-only at import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.screen import Screen

SCREENS: dict[str, str] = {"presets": "cltui.tui.screens.presets:PresetsScreen",
                           "runs": "cltui.tui.screens.runs:RunsScreen",
                           "live": "cltui.tui.screens.live:LiveScreen",
                           "compare": "cltui.tui.screens.compare:CompareScreen"}
"""Each mode's screen class, by module path, in the order of the tabs (1 Presets … 4 Compare)."""


def screen_class(mode: str) -> type[Screen]:
    """The screen class of `mode` (importing its module on first use)."""
    module, name = SCREENS[mode].split(":")
    cls: type[Screen] = getattr(importlib.import_module(module), name)
    return cls
