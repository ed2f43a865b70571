"""Two database roles: the owner, which owns every table and runs the migrations, and the app, which owns nothing.

Row-Level Security is only as strong as the role it applies to. A role that owns a table can turn RLS off on it
(`ALTER TABLE ... NO FORCE ROW LEVEL SECURITY`), drop its policies or TRUNCATE it (which RLS does not filter). So
the processes that serve (web, gRPC, workers, the relay) connect as the app role (`DATABASE_URL`), which after
every `migrate` holds exactly SELECT, INSERT, UPDATE and DELETE on the tables and USAGE on their sequences, and no
right at all on the scope key (`core.tenancy.ensure_tenant_scope`). Only `migrate` and `flush` connect as the owner
(`DATABASE_OWNER_URL`: its user and password, on the app's server and database), through `as_owner`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections, transaction

APP_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


@contextmanager
def as_owner(alias: str = DEFAULT_DB_ALIAS) -> Iterator[Any]:
    """Connect `alias` as the owner role for the block, then as the app role again (a fresh connection each way)."""
    owner = settings.DATABASE_OWNER
    if not owner:
        raise CommandError(
            "DATABASE_OWNER_URL is not set: migrations connect as the role that owns the tables "
            "(postgres://<owner>:<password>@/ ; the server and database are DATABASE_URL's)"
        )
    connection = connections[alias]
    saved = {key: connection.settings_dict.get(key) for key in owner}
    if saved == owner:
        yield connection
        return
    connection.close()
    connection.settings_dict.update(owner)
    try:
        yield connection
    finally:
        connection.close()
        connection.settings_dict.update(saved)


def tenant_tables(cursor: Any) -> list[str]:
    """The tables of the current schema that carry the tenant policy, quoted."""
    from core.tenancy import POLICY_TENANT

    cursor.execute(
        "SELECT quote_ident(c.relname) FROM pg_policy AS p JOIN pg_class AS c ON c.oid = p.polrelid "
        "WHERE c.relnamespace = to_regnamespace(current_schema()) AND p.polname = %s ORDER BY c.relname",
        [POLICY_TENANT],
    )
    return [row[0] for row in cursor.fetchall()]


def policies_current(cursor: Any) -> None:
    """As the owner: the current scope key and function, and every tenant table's policies in their current form
    (databases migrated before the policies verified a claim get them here; see the core migration that calls
    this before any data migration reads under the new claims)."""
    from core.tenancy import (
        ALL_POLICY_EXPR,
        POLICY_ALL,
        POLICY_TENANT,
        TENANT_POLICY_EXPR,
        ensure_tenant_scope,
    )

    ensure_tenant_scope(cursor)
    for table in tenant_tables(cursor):
        cursor.execute(
            f"ALTER POLICY {POLICY_TENANT} ON {table} USING ({TENANT_POLICY_EXPR}) WITH CHECK ({TENANT_POLICY_EXPR})"
        )
        cursor.execute(
            f"ALTER POLICY {POLICY_ALL} ON {table} USING ({ALL_POLICY_EXPR}) WITH CHECK ({ALL_POLICY_EXPR})"
        )


def secure_database(alias: str = DEFAULT_DB_ALIAS) -> None:
    """After the migrations, as the owner, in one transaction: the policies as `policies_current` leaves them,
    and the app role's rights reset to exactly its DML."""
    from core.tenancy import SCOPE_KEY_TABLE

    connection = connections[alias]
    app_role = settings.DATABASE_APP_ROLE
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        policies_current(cursor)
        cursor.execute("SELECT current_user, quote_ident(current_schema())")
        owner, schema = cursor.fetchone()
        if not app_role or app_role == owner:
            return
        role = connection.ops.quote_name(app_role)
        for statement in (
            f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {role}",
            f"GRANT USAGE ON SCHEMA {schema} TO {role}",
            f"GRANT {APP_PRIVILEGES} ON ALL TABLES IN SCHEMA {schema} TO {role}",
            f"REVOKE ALL ON {schema}.{SCOPE_KEY_TABLE} FROM {role}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        ):
            cursor.execute(statement)
