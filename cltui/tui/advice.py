"""Engine error lines in the TUI's own words: the engine's advice names CLI flags (`--set k=v`,
`--device cpu`, `--data-dir`), which mean nothing in a text box; here they become overrides and the
TUI's start options. Plain strings only (no textual), so the CLI keeps the engine's wording."""

from __future__ import annotations

import re

_RULES: tuple[tuple[str, str], ...] = (
    (r"use --device cpu or --device auto", "use the override device=cpu (or device=auto)"),
    (r"--device (\w+)", r"the override device=\1"),
    (r"e\.g\. --set ", "e.g. "),
    (r"write e\.g\. --set ", "write e.g. "),
    (r"--set:", "override:"),
    (r"--set ", "override "),
    (r"point --data-dir / CLTUI_DATA_DIR at", "start the TUI with `cltui --data-dir DIR` (or set CLTUI_DATA_DIR) at"),
    (r"(?<!cltui )--data-dir", "`cltui --data-dir`"),
)


def tui_advice(message: str) -> str:
    """`message` with every CLI flag it suggests rewritten as what to do in the TUI."""
    for pattern, repl in _RULES:
        message = re.sub(pattern, repl, message)
    return message
