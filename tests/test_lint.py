"""The dev tools as tests: `ruff check .` over the whole repo and `mypy` (strict on engine/, settings in
pyproject.toml) must pass. CI runs only pytest, so these keep both clean.

Both run as subprocesses of this interpreter (`python -m ruff`, `python -m mypy`) from the repo root so
they read pyproject.toml. mypy keeps its default cache (.mypy_cache, git-ignored): the first run takes
tens of seconds, later ones a few. A missing tool fails the test: both are in the `dev` extra.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_tool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, input=stdin, capture_output=True, text=True)


def report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def test_ruff_passes_on_the_whole_repo() -> None:
    proc = run_tool("ruff", "check", ".")
    assert proc.returncode == 0, report(proc)


def test_mypy_strict_passes_on_engine() -> None:
    proc = run_tool("mypy")
    assert proc.returncode == 0, report(proc)
    assert "Success" in proc.stdout, report(proc)


def test_ruff_config_catches_an_unused_import() -> None:
    """Guards the test above against a config that selects nothing: pyflakes' F401 must fire."""
    proc = run_tool("ruff", "check", "--no-cache", "--stdin-filename", "engine/probe.py", "-", stdin="import os\n")
    assert proc.returncode == 1 and "F401" in proc.stdout, report(proc)


def test_mypy_reads_strict_from_pyproject(tmp_path: Path) -> None:
    """Guards the mypy test against a config that lost `strict`: an unannotated function must fail.
    (A file named on the command line replaces the config's `files`; every other setting still applies.)"""
    probe = tmp_path / "probe.py"
    probe.write_text("def f(x):\n    return x\n")
    proc = run_tool("mypy", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(probe))
    assert proc.returncode == 1 and "missing a type annotation" in proc.stdout, report(proc)
