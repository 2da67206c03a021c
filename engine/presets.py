"""Find, list and load the TOML presets that ship with cltui (the top-level `presets` package).

A preset's name is its path under `presets/` without `.toml`, e.g. `split-mnist/ewc`. A path to
any TOML file also works as a preset name. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from engine.config import RunConfig, load_config, read_toml
from engine.errors import ConfigError, suggest


def presets_root() -> Path:
    """The folder holding the shipped presets (inside the installed package)."""
    return Path(str(resources.files("presets")))


def preset_names() -> list[str]:
    root = presets_root()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.toml"))


def preset_path(name: str) -> Path:
    """Resolve a preset name (or a path to a .toml file) to a file; unknown names suggest close ones."""
    as_path = Path(name)
    if name.endswith(".toml") and as_path.is_file():
        return as_path
    path = presets_root() / f"{name}.toml"
    if path.is_file():
        return path
    raise ConfigError(f"unknown preset {name!r}.{suggest(name, preset_names())} List them with: cltui presets")


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
    ref = raw.get("reference", {})
    return PresetInfo(
        name=name, path=path, benchmark=raw.get("benchmark", {}).get("name", "split_mnist"),
        method=raw.get("method", {}).get("name", "finetune"), description=raw.get("description", ""),
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
