"""The TUI never loads torch: importing it (and building the app) in a fresh interpreter leaves
`torch` out of sys.modules, so `cltui` starts in well under a second."""

from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = ["cltui.tui.app", "cltui.tui.screens.presets", "cltui.tui.screens.runs", "cltui.tui.screens.live",
           "cltui.tui.screens.compare", "cltui.tui.widgets", "cltui.tui.records", "cltui.tui.services"]


@pytest.mark.parametrize("module", MODULES)
def test_tui_module_does_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; sys.exit(3 if 'torch' in sys.modules else 0)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{module} imported torch (rc={proc.returncode}): {proc.stderr[-2000:]}"


def test_building_the_app_does_not_import_torch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from cltui.tui.app import create_app\n"
        "from cltui.tui.services import Settings\n"
        "from engine.executor import LocalExecutor\n"
        "from engine.store import RunStore\n"
        f"s = Settings(runs_dir=Path({str(tmp_path)!r}))\n"
        "create_app(RunStore(s.runs_dir), LocalExecutor(s.runs_dir, detach=True), s)\n"
        "sys.exit(3 if 'torch' in sys.modules else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
