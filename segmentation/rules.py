"""The default RFM rule table and the checks every rule table must pass.

The defaults follow the usual recency x frequency map (monetary open); the ten segments tile all 25 R x F cells
exactly once, so every scored customer gets a segment whatever the priorities:

    F:   1            2            3            4            5
R 5  new          potential    potential    champions    champions
R 4  promising    potential    potential    loyal        loyal
R 3  need_attn    need_attn    need_attn    loyal        loyal
R 2  hibernating  hibernating  at_risk      at_risk      cant_lose
R 1  lost         lost         at_risk      at_risk      cant_lose
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from segmentation.models import NO_PURCHASES, UNCLASSIFIED


@dataclass(frozen=True)
class RuleSpec:
    priority: int
    segment: str
    label: str
    r: tuple[int, int]
    f: tuple[int, int]
    m: tuple[int, int] = (1, 5)


DEFAULT_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(10, "champions", "Champions", (5, 5), (4, 5)),
    RuleSpec(20, "loyal", "Loyal", (3, 4), (4, 5)),
    RuleSpec(30, "potential_loyalists", "Potential loyalists", (4, 5), (2, 3)),
    RuleSpec(40, "new", "New", (5, 5), (1, 1)),
    RuleSpec(50, "promising", "Promising", (4, 4), (1, 1)),
    RuleSpec(60, "need_attention", "Need attention", (3, 3), (1, 3)),
    RuleSpec(70, "cant_lose", "Can't lose", (1, 2), (5, 5)),
    RuleSpec(80, "at_risk", "At risk", (1, 2), (3, 4)),
    RuleSpec(90, "hibernating", "Hibernating", (2, 2), (1, 2)),
    RuleSpec(100, "lost", "Lost", (1, 1), (1, 2)),
)

RESERVED_LABELS = {NO_PURCHASES: "No purchases", UNCLASSIFIED: "Unclassified"}


class RuleLike(Protocol):
    r_min: int
    r_max: int
    f_min: int
    f_max: int
    m_min: int
    m_max: int


def uncovered_cells(rules: Iterable[RuleLike]) -> list[tuple[int, int, int]]:
    """The (R, F, M) score cells no rule matches; a complete rule table has none."""
    rules = list(rules)
    return [
        (r, f, m)
        for r in range(1, 6)
        for f in range(1, 6)
        for m in range(1, 6)
        if not any(
            x.r_min <= r <= x.r_max and x.f_min <= f <= x.f_max and x.m_min <= m <= x.m_max for x in rules
        )
    ]


def segment_label(segment: str, labels: dict[str, str] | None = None) -> str:
    if labels and segment in labels and labels[segment]:
        return labels[segment]
    if segment in RESERVED_LABELS:
        return RESERVED_LABELS[segment]
    return segment.replace("_", " ").capitalize()
