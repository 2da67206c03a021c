"""engine.provenance: reference sources in words (no internal spec references, unverified labelled)
and which overrides make a run not comparable with its preset's reference."""

from __future__ import annotations

import tomllib

from engine.presets import preset_names, preset_path
from engine.provenance import comparability_note, protocol_overrides, source_words, strip_internal


def test_strip_internal_references() -> None:
    assert strip_internal("method as in X (cl_in_rnns), spec §4.4, applied") == "method as in X (cl_in_rnns), applied"
    assert strip_internal("hypercl defaults (spec §8)") == "hypercl defaults"
    assert strip_internal("LoP (§10.4) metrics") == "LoP metrics"


def test_source_kinds() -> None:
    assert source_words("Test et al. 2020, table 1").label == "published · Test et al. 2020, table 1"
    w = source_words("von Oswald et al. 2020", "The 99.8 is from memory and unverified")
    assert (w.kind, w.verified) == ("unverified", False) and w.label.startswith("unverified · von Oswald")
    assert source_words("unverified: recalled; X").label == "unverified · recalled; X"
    assert source_words("cltui's own tuning").kind == "own"
    assert source_words("baseline: a fresh network per task").label == "baseline · a fresh network per task"
    assert source_words("Dohare et al. 2024", has_number=False).kind == "settings"


def test_shipped_presets_name_their_source_without_spec_references() -> None:
    for name in preset_names():
        raw = tomllib.loads(preset_path(name).read_text())
        ref = raw.get("reference", {})
        assert "§" not in preset_path(name).read_text(), name  # the TOML itself is shown in the TUI
        if ref.get("source"):
            words = source_words(ref["source"], ref.get("notes", ""))
            assert words.text and "spec" not in words.label, name
    hnet = tomllib.loads(preset_path("split-mnist/hnet").read_text())["reference"]
    assert source_words(hnet["source"], hnet.get("notes", "")).kind == "unverified"


def test_protocol_overrides() -> None:
    assert protocol_overrides(["seed=3", "device=cpu", "threads=1", "analyses.curves.every=5", "training.lr=0.1",
                               "model.hidden=[10]"]) == ["training.lr=0.1", "model.hidden=[10]"]
    assert comparability_note({"overrides": ["device=cpu"]}) == ""
    assert comparability_note({}) == ""
    assert comparability_note({"overrides": ["benchmark.num_tasks=3"]}).startswith("not comparable: benchmark.num_tasks=3")
