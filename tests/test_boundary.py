"""The two-way import boundary, checked in fresh interpreters: the UI never loads torch at import,
the engine never loads textual, typer or rich. Every module of both packages is imported, walked
recursively (subpackages such as cltui.tui.screens and engine.methods included)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import cltui
import engine

REPO = Path(__file__).resolve().parents[1]


def imported_after(modules: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return set(out.stdout.split())


def all_modules(pkg: types.ModuleType) -> list[str]:
    """`pkg` and every module below it, at any depth, except `__main__` modules (they run the program).

    walk_packages needs the full-name prefix to recurse: without it, it looks subpackages up by
    their bare name, fails to import them and silently skips everything inside them."""
    found = pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}.", onerror=_raise)
    return [pkg.__name__] + [m.name for m in found if not m.name.endswith(".__main__")]


def _raise(name: str) -> None:
    raise ImportError(f"cannot import package {name} while walking it")


def ui_modules() -> list[str]:
    return all_modules(cltui)


def engine_modules() -> list[str]:
    return all_modules(engine)


def test_the_walk_reaches_nested_modules() -> None:
    ui, eng = ui_modules(), engine_modules()
    assert {"cltui.cli", "cltui.tui.app", "cltui.tui.screens.presets", "cltui.tui.screens.live"} <= set(ui)
    assert {"engine.loop", "engine.methods.ewc", "engine.models.lstm", "engine.benchmarks.ssmnist",
            "engine.data.strokes"} <= set(eng)
    # Every .py file below the packages is in the walk (minus __main__).
    for pkg, mods in ((cltui, ui), (engine, eng)):
        root = Path(pkg.__path__[0])
        files = {".".join((pkg.__name__, *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
                 for p in root.rglob("*.py") if p.name != "__main__.py"}
        assert files == set(mods)


def test_ui_does_not_import_torch() -> None:
    wanted = ui_modules()
    mods = imported_after(wanted)
    assert "torch" not in mods, "a cltui module imports torch at module scope"
    assert "matplotlib" not in mods, "a cltui module imports matplotlib at module scope (figures import it when drawing)"
    assert set(wanted) <= mods


def test_engine_does_not_import_ui_libraries() -> None:
    mods = engine_modules()
    loaded = imported_after(mods)
    assert {"textual", "typer", "rich"}.isdisjoint(loaded), sorted({"textual", "typer", "rich"} & loaded)
    assert set(mods) <= loaded


def test_cli_help_does_not_load_torch() -> None:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom cltui.cli import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0\n"
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False False"
