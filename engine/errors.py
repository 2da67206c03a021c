"""User-facing errors: each carries one line that says what is wrong and what to do.

The CLI and TUI print `str(err)` and exit non-zero; they never show a traceback for these.
Torch-free.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CltuiError(Exception):
    """An error caused by the user's input or environment, with a one-line remedy."""


class ConfigError(CltuiError):
    """A preset or override is invalid."""


class DataError(CltuiError):
    """Data files are missing or corrupt."""


class RunStoreError(CltuiError):
    """A run directory is missing, unreadable or not writable."""


class DeviceError(CltuiError):
    """The requested device is not available."""


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Closest valid names to `word` (difflib ratio), best first."""
    choices = list(choices)
    found = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if not found:
        # Fall back to substring hits so "ewc" finds "split-mnist/ewc".
        found = [c for c in choices if word.lower() in c.lower()][:n]
    return found


def suggest(word: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix, or '' when nothing is close."""
    found = close_matches(word, choices)
    return f" Did you mean {', '.join(repr(f) for f in found)}?" if found else ""
