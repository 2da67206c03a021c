"""The two-way import boundary, checked in fresh interpreters: the UI never loads torch at import,
the engine never loads textual, typer or rich."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

REPO = Path(__file__).resolve().parents[1]


def imported_after(modules: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return set(out.stdout.split())


def ui_modules() -> list[str]:
    import cltui

    return ["cltui"] + [f"cltui.{m.name}" for m in pkgutil.walk_packages(cltui.__path__) if m.name != "__main__"]


def engine_modules() -> list[str]:
    return [f"engine.{m.name}" for m in pkgutil.walk_packages(engine.__path__, ) if m.name != "__main__"]


def test_ui_does_not_import_torch() -> None:
    mods = imported_after(ui_modules())
    assert "torch" not in mods, "a cltui module imports torch at module scope"
    assert "cltui.cli" in mods


def test_engine_does_not_import_ui_libraries() -> None:
    mods = [m for m in engine_modules()]
    loaded = imported_after(mods)
    assert {"textual", "typer", "rich"}.isdisjoint(loaded), sorted({"textual", "typer", "rich"} & loaded)
    assert "engine.loop" in loaded


def test_cli_help_does_not_load_torch() -> None:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom cltui.cli import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"
