"""Run planning: a preset, overrides, seeds and a grid become the list of runs to start.

`plan(preset, overrides, seeds, grid)` is the one place seed groups and sweeps are expanded; the CLI
(`cltui run --seeds N --grid key=v1,v2`) and the TUI (launching N seeds) only call it and hand the
result to an executor (engine.executor). Each `PlannedRun` carries its resolved config, its seed
group id ('' for a lone run) and its overrides, whose short hash goes into the run id.

Order: grid points in the order given (the cartesian product, first key slowest), each point's seeds
next to each other. Every grid point with more than one seed is its own seed group: a group's runs
differ only in their seed, so its mean ± std is over seeds alone.

Torch-free.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine.config import RunConfig, parse_override
from engine.errors import ConfigError
from engine.runlock import slug
from engine.schema import INT_MAX

MAX_RUNS = 1000
"""A plan larger than this is almost certainly a typo in --seeds or --grid."""


@dataclass(frozen=True)
class PlannedRun:
    """One run to start: what to train, the seed group it belongs to, and the overrides that made it."""

    config: RunConfig
    group: str = ""
    """seed-group id shared by runs that differ only in their seed; '' for a lone run"""
    overrides: tuple[str, ...] = ()
    """`key=value` overrides applied to the preset (the user's, then this grid point's), seed excluded"""

    @property
    def tag(self) -> str:
        """Short hash of the overrides, part of the run id (engine.runlock.claim_run_dir)."""
        return override_hash(self.overrides)


def _key(text: str) -> str:
    return text.partition("=")[0].strip()


def override_hash(overrides: Sequence[str]) -> str:
    """4 hex digits of blake2b over the sorted, whitespace-normalised overrides, seed excluded (the
    seed is in the run id already). Equal override sets give equal hashes whatever their order."""
    norm = sorted(f"{_key(o)}={o.partition('=')[2].strip()}" for o in overrides if _key(o) != "seed")
    return hashlib.blake2b("\n".join(norm).encode(), digest_size=2).hexdigest()


def format_value(value: Any) -> str:
    """A grid value as the right-hand side of an override (TOML: true, 0.01, [100, 100], bare words)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def split_values(text: str) -> list[str]:
    """'0.1,0.01' → ['0.1', '0.01']; commas inside brackets or quotes do not split ('[1,2],[3]')."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return out


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """['training.lr=0.1,0.01', 'method.lambda=1,10'] → {'training.lr': ['0.1', '0.01'], ...}."""
    grid: dict[str, list[str]] = {}
    for text in items:
        if "=" not in text:
            raise ConfigError(f"--grid {text!r}: expected KEY=V1,V2,..., e.g. --grid training.lr=0.1,0.01")
        key, _, rhs = text.partition("=")
        key = key.strip()
        values = [v for v in split_values(rhs) if v]
        if not key or not values:
            raise ConfigError(f"--grid {text!r}: expected KEY=V1,V2,..., e.g. --grid training.lr=0.1,0.01")
        if key == "seed":
            raise ConfigError("--grid seed=...: give seeds with --seeds (a count) instead")
        if key in grid:
            raise ConfigError(f"--grid: {key!r} is given twice; list all its values in one --grid")
        parse_override(f"{key}={values[0]}")  # same key syntax checks as --set
        grid[key] = values
    return grid


def _seed_list(seeds: int | Sequence[int], base: int) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds}: give at least 1")
        if base + seeds - 1 > INT_MAX:
            raise ConfigError(f"--seeds {seeds}: seeds from {base} on would pass 2^63 - 1, the largest seed")
        if seeds > MAX_RUNS:  # checked again for the whole plan; here before building a huge list
            raise ConfigError(f"--seeds {seeds}: at most {MAX_RUNS} runs at once")
        return [base + k for k in range(seeds)]
    out = [int(s) for s in seeds]
    if any(not 0 <= s <= INT_MAX for s in out):
        raise ConfigError(f"seeds {out}: every seed must be 0 to 2^63 - 1")
    if not out:
        raise ConfigError("no seeds given")
    if len(set(out)) != len(out):
        raise ConfigError(f"seeds {out}: each seed at most once")
    return out


def group_id(name: str, n_seeds: int, stamp: str | None = None, token: str | None = None) -> str:
    """`<stamp>-<preset>-x<n>-<4 random hex>`: the random part keeps two groups of the same preset
    started in the same second apart (their runs would otherwise pool into one mean ± std)."""
    return (f"{stamp or time.strftime('%Y%m%d-%H%M%S')}-{slug(name)}-x{n_seeds}-"
            f"{token if token is not None else secrets.token_hex(2)}")


def plan(preset: str, overrides: Sequence[str] = (), seeds: int | Sequence[int] = 1,
         grid: Mapping[str, Sequence[Any]] | None = None, *, seed: int | None = None, device: str | None = None,
         stamp: str | None = None) -> list[PlannedRun]:
    """The runs of `preset` with `overrides`, over every `grid` point × `seeds`.

    `seeds` is a count (seeds base, base+1, ...; base = `seed`, else the preset's after overrides)
    or an explicit list. `grid` maps an override key to its values. Every config is validated here,
    so a bad value fails before anything starts (ConfigError naming the override)."""
    from engine.presets import (
        load_preset,  # reads TOML; imported here so `import engine.planning` stays light
    )

    grid = dict(grid or {})
    points = list(itertools.product(*[[f"{k}={format_value(v)}" for v in vals] for k, vals in grid.items()]))
    base_cfg = load_preset(preset, list(overrides), seed, device)
    seed_list = _seed_list(seeds, base_cfg.seed)
    if len(points) * len(seed_list) > MAX_RUNS:
        raise ConfigError(f"this plan has {len(points) * len(seed_list)} runs (grid points × seeds); "
                          f"at most {MAX_RUNS} at once")
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    user = tuple(o for o in overrides if _key(o) != "seed")
    out: list[PlannedRun] = []
    groups: set[str] = set()
    for point in points:
        cfg = load_preset(preset, [*overrides, *point], seed, device) if point else base_cfg
        group = ""
        while len(seed_list) > 1 and group in groups | {""}:
            # Each grid point its own group: 4 random hex digits can repeat within one plan
            # (6 points collide about once in 4,400 plans), so draw again until they differ.
            group = group_id(cfg.name, len(seed_list), stamp)
        groups.add(group)
        for s in seed_list:
            out.append(PlannedRun(replace(cfg, seed=s), group, (*user, *point)))
    return out
