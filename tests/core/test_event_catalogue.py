"""The catalogue of published events: the first ten keep the fields the seed published, and the README's table
lists every event with the catalogue's fields (no database, no broker)."""

from __future__ import annotations

import re
from pathlib import Path

from core.event_catalogue import CATALOGUE, EVENTS, FIRST_TEN

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_table() -> dict[str, list[str]]:
    text = README.read_text()
    section = text.split("### Published events", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = re.findall(r"`([^`]+)`", cells[2])
    return rows


def test_the_readme_lists_every_published_event_with_its_fields():
    table = readme_table()
    assert list(table) == [e.event_type for e in CATALOGUE]
    assert {t: tuple(fields) for t, fields in table.items()} == {e.event_type: e.fields for e in CATALOGUE}


def test_the_first_ten_keep_the_fields_the_seed_published():
    assert FIRST_TEN == (
        "customer.created",
        "customer.updated",
        "customer.deleted",
        "loyalty.points.earned",
        "loyalty.points.redeemed",
        "loyalty.tier.upgraded",
        "credit.approved",
        "credit.used",
        "credit.limit.exceeded",
        "customer.segment.changed",
    )
    assert EVENTS["loyalty.tier.upgraded"].fields == (
        "customer_id", "previous_tier", "tier", "rule", "qualifying_points", "window_start", "window_end", "reason",
    )  # fmt: skip
    assert EVENTS["credit.approved"].fields == (
        "credit_line_id", "customer_id", "change", "status", "credit_limit", "used", "available", "currency",
        "payment_terms_days", "requested_by", "decided_by", "decided_at",
    )  # fmt: skip


def test_every_event_names_the_customer():
    assert all("customer_id" in e.fields for e in CATALOGUE)
    assert len(EVENTS) == len(CATALOGUE) == 25
