"""Tenant scoping: in the app (querysets) and underneath in PostgreSQL (Row-Level Security).

Every door (REST view, gRPC call, Celery task, admin request) runs its work inside `tenant_context(slug)`: one
transaction whose `app.tenant_id` setting is transaction-local (`set_config(..., true)`), so it can never carry over
to the next request that reuses the connection. Entering costs one statement; leaving the outermost context costs
none (the setting ends with the transaction). A nested context restores the previous value on exit, because a
transaction-local setting lasts until the *outermost* transaction ends (it would otherwise leak out of its block).

The setting is a claim, not a name: `<scope>.<digest>`, where the digest is SHA-256 of a key and the scope (a
tenant's slug, or `*` for every tenant). The RLS policies (see `EnableRowLevelSecurity`) compare `tenant_id` with
`core_tenant_scope()`, a SECURITY DEFINER function of the owner role that checks the digest against the key kept in
a table only the owner can read, and returns the scope or NULL. So a session of the app's role that sets the
setting itself (an injected statement, say) sees no tenant at all, not even its own: only code holding
`settings.TENANT_SCOPE_KEY` can produce a claim. Every tenant is visible only to a `*` claim, made by
`all_tenants_context()` for the system jobs that must span tenants (the outbox relay, metrics) and for superusers
in the admin. The app's role owns no table (`core.database_roles`), so it cannot turn the policies off either.
"""

from __future__ import annotations

import contextvars
import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.db import connection, models, transaction
from django.db.migrations.operations.base import Operation

from core.ttl_cache import TtlCache

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

_current_tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_tenant", default=None)
_all_tenants: contextvars.ContextVar[bool] = contextvars.ContextVar("all_tenants", default=False)


_tenants: TtlCache[Any] = TtlCache()
TENANT_TTL = 60.0


def tenant_cached(slug: str) -> Any:
    """The tenant's row, kept for a minute per process (every call of every door needs it); UnknownTenant when the
    slug is not a tenant of this service."""
    from core.errors import UnknownTenant
    from core.models import Tenant

    tenant = _tenants.get(slug)
    if tenant is None:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise UnknownTenant(tenant=slug)
        _tenants.set(slug, tenant, valid_until=time.time() + TENANT_TTL)
    return tenant


def current_tenant() -> Any:
    """The row of the tenant whose transaction this is (`tenant_cached`)."""
    return tenant_cached(require_tenant_slug())


def tenant_today(slug: str) -> Any:
    """Today's date in the tenant's time zone (due dates, aging and schedules count in it)."""
    from core import clock

    return clock.today(tenant_cached(slug).time_zone)


def tenant_forget(slug: str) -> None:
    """Drop this process's copy of the tenant's row (a saved tenant; again once its transaction commits, so that
    a read in between cannot keep the old row). Other processes see a change within `TENANT_TTL`."""
    _tenants.discard(slug)
    transaction.on_commit(lambda: _tenants.discard(slug))


class TenantNotSet(RuntimeError):
    """Raised when tenant-scoped code runs outside `tenant_context`."""


def current_tenant_slug() -> str | None:
    return _current_tenant.get()


def require_tenant_slug() -> str:
    slug = _current_tenant.get()
    if slug is None:
        raise TenantNotSet("This code must run inside core.tenancy.tenant_context(tenant)")
    return slug


ALL_TENANTS_SCOPE = "*"
_claims: dict[tuple[bytes, str], str] = {}


def scope_claim(scope: str) -> str:
    """The `app.tenant_id` value under which the database's policies show `scope` (a slug, or `*`)."""
    from django.conf import settings

    key = settings.TENANT_SCOPE_KEY
    claim = _claims.get((key, scope))
    if claim is None:
        claim = _claims.setdefault(
            (key, scope), f"{scope}.{hashlib.sha256(key + scope.encode()).hexdigest()}"
        )
    return claim


def _settings_set(claim: str, *, read_previous: bool) -> str:
    """Set the tenant claim transaction-locally in one statement; with `read_previous`, return the earlier value
    ('' when unset) read in that same statement."""
    with connection.cursor() as cursor:
        if not read_previous:
            cursor.execute("SELECT set_config('app.tenant_id', %s, true)", [claim])
            return ""
        cursor.execute(
            "SELECT coalesce(current_setting('app.tenant_id', true), ''), set_config('app.tenant_id', %s, true)",
            [claim],
        )
        previous, _ = cursor.fetchone()
    return previous


@contextmanager
def _scoped_transaction(*, tenant_slug: str | None, all_tenants: bool) -> Iterator[None]:
    """One transaction with the tenant claim set locally: one statement in.

    The outermost block restores nothing: a transaction-local setting ends with its transaction, so none out. A
    nested block (inside a transaction someone else opened) reads the previous values in the statement that sets
    its own and puts them back on exit, so its settings never leak out of it.
    """
    token = _current_tenant.set(tenant_slug)
    all_token = _all_tenants.set(all_tenants)
    nested = transaction.get_connection().in_atomic_block
    try:
        with transaction.atomic():
            claim = scope_claim(ALL_TENANTS_SCOPE if all_tenants else tenant_slug or "")
            previous = _settings_set(claim, read_previous=nested)
            try:
                yield
            finally:
                if nested and not transaction.get_connection().needs_rollback:
                    _settings_set(previous, read_previous=False)
    finally:
        _current_tenant.reset(token)
        _all_tenants.reset(all_token)


@contextmanager
def tenant_context(tenant: Any) -> Iterator[None]:
    """Run the block in one transaction scoped to `tenant` (a Tenant or its slug).

    Any exception rolls the whole transaction back, a `DomainError` too: an error raised out of this block always
    means that nothing of it was committed. A refusal that must still leave a record (`credit.limit.exceeded`)
    hands its write to `core.refusals.refusal_record`; the outermost context writes it after the rollback, in a
    transaction of its own, then re-raises.
    """
    from core.errors import DomainError
    from core.refusals import refusals_collected

    slug = tenant if isinstance(tenant, str) else tenant.slug
    with refusals_collected() as recorder:
        try:
            with _scoped_transaction(tenant_slug=slug, all_tenants=False):
                yield
                if recorder is not None:  # refusals the block caught and went on from commit with it
                    _refusals_write(recorder.take())
        except DomainError:
            if recorder is not None:
                _refusals_write(recorder.take())
            raise


def _refusals_write(writes: list[tuple[str, Callable[[], None]]]) -> None:
    for tenant_slug, write in writes:
        with _scoped_transaction(tenant_slug=tenant_slug, all_tenants=False):
            write()


@contextmanager
def all_tenants_context() -> Iterator[None]:
    """Run the block in one transaction that sees every tenant (system jobs, superusers in the admin)."""
    with _scoped_transaction(tenant_slug=None, all_tenants=True):
        yield


class TenantManager(models.Manager):
    """Scopes every query to the current tenant in the app, on top of the database's own policy."""

    def get_queryset(self) -> models.QuerySet:
        qs = super().get_queryset()
        slug = _current_tenant.get()
        if slug is not None and not _all_tenants.get():
            qs = qs.filter(tenant_id=slug)
        return qs


# --- Migrations -----------------------------------------------------------------------------------------------
POLICY_TENANT = "tenant_isolation"
POLICY_ALL = "all_tenants"
SCOPE_FUNCTION = "core_tenant_scope"
SCOPE_KEY_TABLE = "core_tenant_scope_key"
# A scalar subquery: PostgreSQL runs the function once per statement (an InitPlan), not once per row.
_SCOPE = f"(SELECT {SCOPE_FUNCTION}())"
TENANT_POLICY_EXPR = f"tenant_id = {_SCOPE}"
ALL_POLICY_EXPR = f"{_SCOPE} = '{ALL_TENANTS_SCOPE}'"


def ensure_tenant_scope(cursor: Any) -> None:
    """Create or refresh, as the owner role, the key table (readable by the owner only) and the function that
    verifies a claim with it; store the current `TENANT_SCOPE_KEY`."""
    from django.conf import settings

    cursor.execute("SELECT quote_ident(current_schema())")
    schema = cursor.fetchone()[0]
    key_table = f"{schema}.{SCOPE_KEY_TABLE}"
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {key_table} (id smallint PRIMARY KEY CHECK (id = 1), key bytea NOT NULL)"
    )
    cursor.execute(f"REVOKE ALL ON {key_table} FROM PUBLIC")
    cursor.execute(  # the schema is quote_ident(current_schema()), the rest constants
        f"INSERT INTO {key_table} (id, key) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET key = EXCLUDED.key",  # noqa: S608
        [settings.TENANT_SCOPE_KEY],
    )
    # SECURITY DEFINER: it reads the key with the owner's rights; a fixed search_path so that a caller's objects
    # can never stand in for the ones it names.
    cursor.execute(
        f"""CREATE OR REPLACE FUNCTION {schema}.{SCOPE_FUNCTION}() RETURNS text
        LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
        DECLARE
            claim text := current_setting('app.tenant_id', true);
            scope text;
            secret bytea;
        BEGIN
            IF claim IS NULL OR claim = '' THEN
                RETURN NULL;
            END IF;
            scope := split_part(claim, '.', 1);
            SELECT k.key INTO secret FROM {key_table} AS k WHERE k.id = 1;
            IF secret IS NULL
               OR claim <> scope || '.' || encode(sha256(secret || convert_to(scope, 'UTF8')), 'hex') THEN
                RETURN NULL;
            END IF;
            RETURN scope;
        END
        $body$"""  # noqa: S608 - the schema is quote_ident(current_schema()), the rest constants
    )


class EnableRowLevelSecurity(Operation):
    """Enable and FORCE Row-Level Security on a tenant-owned table, with its two policies: rows of the tenant the
    transaction's claim names, and every row for a claim of every tenant (`core_tenant_scope`)."""

    reversible = True
    reduces_to_sql = False  # it reads the schema and stores the key

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def _table(self, app_label: str, state: Any) -> str:
        return state.apps.get_model(app_label, self.model_name)._meta.db_table

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        table = schema_editor.quote_name(self._table(app_label, to_state))
        with schema_editor.connection.cursor() as cursor:
            ensure_tenant_scope(cursor)
        for statement in (
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"CREATE POLICY {POLICY_TENANT} ON {table} USING ({TENANT_POLICY_EXPR}) WITH CHECK ({TENANT_POLICY_EXPR})",
            f"CREATE POLICY {POLICY_ALL} ON {table} USING ({ALL_POLICY_EXPR}) WITH CHECK ({ALL_POLICY_EXPR})",
        ):
            schema_editor.execute(statement)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        table = schema_editor.quote_name(self._table(app_label, from_state))
        for statement in (
            f"DROP POLICY IF EXISTS {POLICY_ALL} ON {table}",
            f"DROP POLICY IF EXISTS {POLICY_TENANT} ON {table}",
            f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
        ):
            schema_editor.execute(statement)

    def describe(self) -> str:
        return f"Enable Row-Level Security on {self.model_name}"

    def deconstruct(self) -> tuple[str, list, dict]:
        return (f"{__name__}.{type(self).__name__}", [], {"model_name": self.model_name})


# --- Admin ----------------------------------------------------------------------------------------------------
class AdminTenantMiddleware:
    """Runs each admin request in its staff user's tenant; superusers see every tenant."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/admin/"):
            return self.get_response(request)
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_staff:
            return self.get_response(request)
        if user.is_superuser:
            with all_tenants_context():
                return self.get_response(request)
        tenant_id = getattr(user, "tenant_id", None)
        if tenant_id is None:
            return self.get_response(request)
        with tenant_context(tenant_id):
            return self.get_response(request)
