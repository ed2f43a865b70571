"""Defence in depth: a session of the app's role, running any SQL it likes (an injected statement, say), can neither
turn Row-Level Security off nor read or write another tenant's rows by setting any setting.

Each attack runs on a connection of its own, as the app's role, on the committed rows of two tenants.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from psycopg import errors

from core.tenancy import scope_claim
from tests.events.conftest import database_url_for_tests

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_tenants(customer_a: Any, customer_b: Any) -> tuple[Any, Any]:
    return customer_a, customer_b


@pytest.fixture
def attacker(two_tenants: Any) -> Iterator[psycopg.Connection]:
    """A connection of the app's role, in a transaction: every attack is rolled back with it."""
    with psycopg.connect(database_url_for_tests()) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (settings.DATABASE_APP_ROLE,)
        yield conn
        conn.rollback()


def _customers(conn: psycopg.Connection) -> set[str]:
    return {str(row[0]) for row in conn.execute("SELECT id FROM customers_customer").fetchall()}


def _refused(conn: psycopg.Connection, statement: str, error: type[Exception]) -> str:
    conn.execute("SAVEPOINT attack")
    with pytest.raises(error) as raised:
        conn.execute(statement)
    conn.execute("ROLLBACK TO SAVEPOINT attack")
    return str(raised.value)


def test_the_app_role_owns_nothing_and_has_only_dml(attacker):
    owned = attacker.execute(
        "SELECT c.relname FROM pg_class AS c WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        " AND c.relnamespace = to_regnamespace(current_schema())"
    ).fetchall()
    assert owned == []
    [(create_db, create_role, superuser, bypass)] = attacker.execute(
        "SELECT rolcreatedb, rolcreaterole, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchall()
    assert (create_db, create_role, superuser, bypass) == (False, False, False, False)
    rights = attacker.execute(
        "SELECT DISTINCT privilege_type FROM information_schema.role_table_grants "
        "WHERE grantee = current_user AND table_name = 'customers_customer'"
    ).fetchall()
    assert {r[0] for r in rights} == {"SELECT", "INSERT", "UPDATE", "DELETE"}


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE customers_customer NO FORCE ROW LEVEL SECURITY",
        "ALTER TABLE customers_customer DISABLE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON customers_customer",
        "ALTER POLICY all_tenants ON customers_customer USING (true)",
        "CREATE POLICY mine ON customers_customer USING (true)",
        "CREATE OR REPLACE FUNCTION core_tenant_scope() RETURNS text LANGUAGE sql AS $$ SELECT '*' $$",
        "TRUNCATE customers_customer",
        "SELECT key FROM core_tenant_scope_key",
        "UPDATE core_tenant_scope_key SET key = '\\x00'",
        "CREATE TABLE customers_mine (id int)",
        "SET ROLE {owner}",
        "SET session_replication_role = replica",
    ],
)
def test_the_app_role_cannot_turn_row_level_security_off(attacker, statement):
    _refused(
        attacker, statement.replace("{owner}", settings.DATABASE_OWNER["USER"]), errors.InsufficientPrivilege
    )
    assert _customers(attacker) == set()  # and the table is still guarded


def _forgeries(tenant_a: str, tenant_b: str) -> list[dict[str, str]]:
    """Settings an attacker could set instead of a claim made with the key."""
    guessed = hashlib.sha256(secrets.token_bytes(32) + tenant_b.encode()).hexdigest()
    keyless = hashlib.sha256(tenant_b.encode()).hexdigest()
    a_digest = scope_claim(tenant_a).split(".", 1)[1]
    forgeries = [
        {"app.tenant_id": tenant_b},  # the setting as it once was: a bare slug
        {"app.tenant_id": f"{tenant_b}.{guessed}"},
        {"app.tenant_id": f"{tenant_b}.{keyless}"},
        {"app.tenant_id": f"{tenant_b}.{a_digest}"},  # a real digest, of another scope
        {"app.tenant_id": f"{tenant_b}.{a_digest}.{tenant_b}"},
        {"app.tenant_id": "*"},
        {"app.tenant_id": f"*.{guessed}"},
        {"app.tenant_id": f"*.{a_digest}"},
        {"app.all_tenants": "on"},  # the switch the policies once read
        {"app.all_tenants": "on", "app.tenant_id": ""},
        {"app.tenant_id": "", "row_security": "on"},
    ]
    return forgeries


def test_no_setting_an_attacker_can_set_shows_another_tenants_rows(attacker, two_tenants, tenant_a, tenant_b):
    _, customer_b = two_tenants
    for forged in _forgeries(tenant_a.slug, tenant_b.slug):
        for name, value in forged.items():
            attacker.execute("SELECT set_config(%s, %s, true)", [name, value])
        assert _customers(attacker) == set(), forged
        assert (
            attacker.execute(
                "UPDATE customers_customer SET notes = 'x' WHERE id = %s RETURNING id", [customer_b.id]
            ).fetchall()
            == []
        ), forged
        assert (
            attacker.execute(
                "DELETE FROM customers_customer WHERE id = %s RETURNING id", [customer_b.id]
            ).fetchall()
            == []
        ), forged
        _refused(
            attacker,
            "INSERT INTO customers_customer (id, tenant_id, type, first_name, last_name, legal_name, trade_name,"
            " document_type, salesperson, route, status, notes, created_at, updated_at) VALUES (gen_random_uuid(),"
            f" '{tenant_b.slug}', 'individual', 'x', '', '', '', '', '', '', 'active', '', now(), now())",
            errors.InsufficientPrivilege,
        )
        attacker.execute("RESET ALL")


def test_turning_row_security_off_is_refused_rather_than_showing_rows(attacker):
    message = _refused(
        attacker, "SET row_security = off; SELECT id FROM customers_customer", errors.InsufficientPrivilege
    )
    assert "row-level security" in message


def test_objects_of_the_attackers_own_cannot_stand_in_for_the_key_or_the_function(attacker, tenant_b):
    own_key = secrets.token_bytes(32)
    attacker.execute("CREATE TEMP TABLE core_tenant_scope_key (id smallint, key bytea)")
    attacker.execute("INSERT INTO pg_temp.core_tenant_scope_key VALUES (1, %s)", [own_key])
    attacker.execute(
        "CREATE FUNCTION pg_temp.core_tenant_scope() RETURNS text LANGUAGE sql AS $$ SELECT '*'::text $$"
    )
    attacker.execute("SET search_path = pg_temp, public")
    claim = f"{tenant_b.slug}.{hashlib.sha256(own_key + tenant_b.slug.encode()).hexdigest()}"
    attacker.execute("SELECT set_config('app.tenant_id', %s, true)", [claim])
    assert _customers(attacker) == set()


def test_only_a_claim_made_with_the_key_shows_its_tenant_and_all_tenants_needs_its_own(
    attacker, two_tenants, tenant_a
):
    customer_a, customer_b = two_tenants
    attacker.execute("SELECT set_config('app.tenant_id', %s, true)", [scope_claim(tenant_a.slug)])
    assert _customers(attacker) == {str(customer_a.id)}
    attacker.execute("SELECT set_config('app.tenant_id', %s, true)", [scope_claim("*")])
    assert _customers(attacker) == {str(customer_a.id), str(customer_b.id)}


def test_the_key_lives_where_only_the_owner_reads_it(attacker):
    [(owner,)] = attacker.execute(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'core_tenant_scope_key'"
    ).fetchall()
    assert owner == settings.DATABASE_OWNER["USER"] != settings.DATABASE_APP_ROLE
    assert attacker.execute(
        "SELECT has_table_privilege('core_tenant_scope_key', 'SELECT'), "
        "has_table_privilege('core_tenant_scope_key', 'UPDATE')"
    ).fetchone() == (False, False)
    with connection.cursor() as cursor:  # the Django connection is the app's role too
        cursor.execute("SELECT current_user")
        assert cursor.fetchone() == (settings.DATABASE_APP_ROLE,)


@pytest.mark.django_db(transaction=False)
def test_migrate_without_the_owner_role_is_refused_with_what_to_set(settings):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    settings.DATABASE_OWNER = None  # production sets no default
    with pytest.raises(CommandError, match="DATABASE_OWNER_URL"):
        call_command("migrate", "--check", verbosity=0)
    with connection.cursor() as cursor:  # and the app's connection is still the app role's
        cursor.execute("SELECT current_user")
        assert cursor.fetchone() == (settings.DATABASE_APP_ROLE,)
