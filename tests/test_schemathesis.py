"""Schemathesis against a live server: every phase, no server error, every response as the schema says.

The OpenAPI schema (drf-spectacular, /api/schema/) is the contract the fuzzer reads. A real server (pytest-django's
live_server on the test database) serves a tenant with seeded customers, and the schemathesis CLI runs all its
phases (examples, coverage, fuzzing, stateful) with the checks `not_a_server_error` and
`response_schema_conformance`. The test asserts no failure at all, and that the schema states the real
constraints: schemathesis reports an operation as "mostly rejected generated data" when the API refuses most of
what the schema allows, and that count is pinned so that it can only go down.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# The operations schemathesis reports as "mostly rejected generated data" (the schema allows what the API refuses).
# 20 before the schema stated amounts, points and keys; 15-17 since (the stateful phase varies between runs).
MOSTLY_REJECTED_AT_MOST = 18

MAX_EXAMPLES = 25
SEED = 20261202


def schemathesis_cli() -> str:
    return str(Path(sys.executable).with_name("schemathesis"))


def mostly_rejected_count(output: str) -> int:
    """The count in "N operations mostly rejected generated data" (0 when schemathesis reports none)."""
    match = re.search(r"(\d+) operations? (?:were )?mostly rejected generated data", output)
    if match:
        return int(match.group(1))
    return 0


@pytest.mark.processes
@pytest.mark.timeout(420)
@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error_and_no_response_outside_the_schema(
    live_server: Any, tenant_a: Any, make_token: Any, tmp_path: Path
) -> None:
    from tests.factories import BusinessCustomerFactory, CustomerFactory

    for _ in range(3):
        CustomerFactory(tenant=tenant_a)
    BusinessCustomerFactory(tenant=tenant_a)
    token = make_token(tenant_a, ttl=3600)

    command = [
        schemathesis_cli(),
        "run",
        f"{live_server.url}/api/schema/",
        "--url",
        live_server.url,
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-deterministic",
        "--max-time",
        "150",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--continue-on-failure",
        "--no-color",
        "--report-dir",
        str(tmp_path),
        "-H",
        f"Authorization: Bearer {token}",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1", "COLUMNS": "200"}
    # our own CLI with our own arguments; run in tmp_path so that its example cache stays out of the repository
    result = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=360, env=env, cwd=tmp_path, check=False
    )
    output = result.stdout + result.stderr
    print(output)

    assert result.returncode == 0, output
    assert "FAILURES" not in output, output
    cases = re.search(r"(\d+) generated, (\d+) passed", output)
    assert cases, output
    generated, passed = int(cases.group(1)), int(cases.group(2))
    assert generated == passed >= 500, output
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in output or f"✅  {phase}" in output, (phase, output)
    rejected = mostly_rejected_count(output)
    assert rejected <= MOSTLY_REJECTED_AT_MOST, output
