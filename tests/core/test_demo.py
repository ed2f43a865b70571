"""seed_demo finds each app's demo data through core's registry, declared by the apps at start, in their order."""

from __future__ import annotations


def test_each_app_declares_its_demo_data_and_customers_come_first():
    from core.demo import demo_seeders

    assert [s.name for s in demo_seeders()] == [
        "customers.demo.seed",
        "loyalty.demo.seed",
        "credit.demo.seed",
        "segmentation.demo.seed",
    ]
