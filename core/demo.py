"""The registry of per-app demo data that `seed_demo` loads into the demo tenant.

Each app declares its seeder in its own `demo.py` (`@demo_seeder(order=20)`), imported by its `AppConfig.ready()`;
core knows no app. Seeders run in ascending order inside the demo tenant's transaction, each only adding what is
missing, so running `seed_demo` again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Seeder = Callable[[Any], None]


@dataclass(frozen=True)
class RegisteredSeeder:
    order: int
    name: str
    seed: Seeder = field(compare=False)


_seeders: list[RegisteredSeeder] = []


def demo_seeder(*, order: int) -> Callable[[Seeder], Seeder]:
    """Declare `seed(tenant)` as an app's demo data; lower orders run first (customers before what needs them)."""

    def register(seed: Seeder) -> Seeder:
        name = f"{seed.__module__}.{seed.__qualname__}"
        if all(s.name != name for s in _seeders):
            _seeders.append(RegisteredSeeder(order, name, seed))
            _seeders.sort(key=lambda s: (s.order, s.name))
        return seed

    return register


def demo_seeders() -> list[RegisteredSeeder]:
    return list(_seeders)
