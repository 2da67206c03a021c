"""Find, list and load the TOML presets that ship with cltui (the top-level `presets` package).

A preset's name is its path under `presets/` without `.toml`, e.g. `split-mnist/ewc`. A path to
any TOML file also works as a preset name. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from engine.config import RunConfig, load_config, read_toml
from engine.errors import ConfigError, suggest


def presets_root() -> Path:
    """The folder holding the shipped presets (inside the installed package)."""
    return Path(str(resources.files("presets")))


def preset_names() -> list[str]:
    root = presets_root()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.toml"))


MAX_NAME = 255
"""Longest preset name or path component: what file systems allow (a longer one raised ENAMETOOLONG)."""


def _shown(name: str) -> str:
    """A name as an error shows it: quoted, and cut to 60 characters when longer."""
    return repr(name) if len(name) <= 60 else f"{name[:40]!r}... ({len(name)} characters)"


def preset_path(name: str) -> Path:
    """Resolve a preset name (or a path to a .toml file) to a file; unknown names suggest close ones.

    Names no file system can hold (a part over 255 characters, a NUL byte) and directories are refused
    with one line instead of the OSError or ValueError that probing them would raise."""
    if not name or "\0" in name or any(len(part) > MAX_NAME for part in name.split("/")):
        raise ConfigError(f"preset name {_shown(name)} is not a valid file name (empty, a NUL byte, or a "
                          f"part over {MAX_NAME} characters). List presets with: cltui presets")
    as_path = Path(name)
    try:
        if as_path.is_dir():
            raise ConfigError(f"{name} is a directory; give a preset name (see cltui presets) or a .toml file")
        if name.endswith(".toml") and as_path.is_file():
            return as_path
        path = presets_root() / f"{name}.toml"
        if path.is_file():
            return path
    except OSError as e:  # e.g. a path through a file, or permission denied on a parent
        raise ConfigError(f"cannot open preset {_shown(name)}: {e.strerror}") from None
    if as_path.is_file():
        raise ConfigError(f"{name} is not a .toml file; presets are TOML files named *.toml")
    raise ConfigError(f"unknown preset {_shown(name)}.{suggest(name, preset_names())} List them with: cltui presets")


@dataclass(frozen=True)
class PresetInfo:
    """What listing presets needs, without validating every option."""

    name: str
    path: Path
    benchmark: str
    method: str
    description: str
    ref_during: float | None
    ref_final: float | None


def preset_info(name: str) -> PresetInfo:
    path = preset_path(name)
    raw = read_toml(path)

    def table(key: str) -> dict[str, Any]:  # a malformed preset still lists; validating it says what is wrong
        value = raw.get(key, {})
        return value if isinstance(value, dict) else {}

    ref = table("reference")
    return PresetInfo(
        name=name, path=path, benchmark=str(table("benchmark").get("name", "split_mnist")),
        method=str(table("method").get("name", "finetune")), description=str(raw.get("description", "")),
        ref_during=ref.get("during"), ref_final=ref.get("final"),
    )


def load_preset(
    name: str, overrides: list[str] | None = None, seed: int | None = None, device: str | None = None
) -> RunConfig:
    """The validated RunConfig of preset `name` with overrides applied."""
    path = preset_path(name)
    raw = read_toml(path)
    raw.setdefault("name", name if not name.endswith(".toml") else path.stem)
    return load_config(raw, str(path), overrides, seed, device)
