"""Where a reference number comes from, in words a user reads, and whether a run can be held
against it: the source line of a preset's reference without internal document references, an
"unverified" label where the number was not checked, and the overrides that change the protocol.

Plain strings only (the views add colour). Must not import rich, textual, typer or torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Internal cross-references ("spec §4.2", "(§8)") mean nothing to a user: never shown.
_SPEC_REF = re.compile(r"\s*\(?\bspec\s*§[\d.§\- ]*\)?|\s*\(§[\d.]+\)|\s*§[\d.]+")

# Override keys that leave the experiment itself unchanged: where and how fast it runs, what is
# measured on the side, where it is saved. Anything else (benchmark, model, method, training,
# evaluation) changes what the reference number was measured on.
_HARMLESS = ("seed", "device", "threads", "name", "description", "analyses.", "checkpoint.", "reference.")


@dataclass(frozen=True)
class SourceWords:
    """A reference's provenance as shown: `text` without internal references; `verified` False when
    the number was not checked against its publication; `kind` is 'published', 'settings' (the
    setting comes from there but the preset holds no number), 'own' (measured by cltui, no
    published number), 'baseline' or 'unverified'."""

    text: str
    verified: bool
    kind: str

    @property
    def label(self) -> str:
        """One line: 'unverified · …', 'published · …', 'measured here (no published number) · …'."""
        head = {"unverified": "unverified", "own": "measured here (no published number)",
                "baseline": "baseline", "published": "published", "settings": "settings from (no number)"}[self.kind]
        return f"{head} · {self.text}" if self.text else head


def strip_internal(text: str) -> str:
    """`text` without internal spec references such as 'spec §4.2' or '(§8)'."""
    out, n = _SPEC_REF.subn("", text)
    if not n:
        return text  # untouched: the tidying below is only for the gaps a removal leaves
    out = re.sub(r",\s*,", ",", out)
    return re.sub(r"\s+([,;.)])", r"\1", re.sub(r"\(\s*\)", "", out)).strip(" ,;")


def source_words(source: str, notes: str = "", has_number: bool = True) -> SourceWords:
    """Classify and clean a preset's reference `source` (its `notes` may say it is unverified);
    `has_number` False: the preset states no reference number, so nothing is 'published' here."""
    text = strip_internal(source or "")
    low = f"{text} {notes}".lower()
    if "unverified" in low or "from memory" in low:
        text = re.sub(r"^unverified\s*[:;,-]\s*", "", text, flags=re.I)
        text = re.sub(r"[;,]\s*unverified$", "", text, flags=re.I)
        return SourceWords(text, False, "unverified")
    if low.startswith("cltui's own") or "no published" in low:
        return SourceWords(text, True, "own")
    if low.startswith("baseline"):
        return SourceWords(re.sub(r"^baseline\s*[:;,]?\s*", "", text, flags=re.I), True, "baseline")
    return SourceWords(text, True, "published" if has_number else "settings")


def protocol_overrides(overrides: Iterable[str]) -> list[str]:
    """The overrides (`key=value`) that change what is trained or measured, so a run with them is not
    comparable with its preset's reference number."""
    out = []
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if not any(key == h or (h.endswith(".") and key.startswith(h)) for h in _HARMLESS):
            out.append(text)
    return out


def overrides_of(environment: Mapping[str, Any]) -> list[str]:
    """The overrides a stored run was started with (its environment record; [] for older runs)."""
    raw = environment.get("overrides") or []
    return [str(o) for o in raw] if isinstance(raw, (list, tuple)) else []


def comparability_note(environment: Mapping[str, Any]) -> str:
    """'' when the run follows its preset's protocol; else a short warning naming the overrides."""
    changed = protocol_overrides(overrides_of(environment))
    if not changed:
        return ""
    shown = ", ".join(changed[:3]) + (f" +{len(changed) - 3}" if len(changed) > 3 else "")
    return f"not comparable: {shown} changes the preset's protocol"
