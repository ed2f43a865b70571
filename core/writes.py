"""Several writes of one operation in one statement: the ORM's own INSERT and UPDATE statements, sent together as
a data-modifying CTE (`WITH w0 AS (INSERT ...), w1 AS (UPDATE ...) INSERT ... RETURNING ...`).

On the hot paths every round trip costs more than the statement: a ledger row, its award and the account update
are three statements that need nothing from each other but values Python already has (ids are UUIDs made here).
PostgreSQL runs the parts against one snapshot and checks foreign keys at the end of the statement, so a part may
point at a row another part inserts; no two parts may change the same row, and a part never sees another's rows.
The statements are the ORM's (`InsertQuery`/`UpdateQuery` compilers): field conversions, `auto_now` and
`db_default` behave as in `save()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Model, Q
from django.db.models.sql import InsertQuery, UpdateQuery

Statement = tuple[str, list[Any]]


def insert_statement(objs: Sequence[Model], *, returning: Sequence[str] = ()) -> Statement:
    """One multi-row INSERT of new instances of one model (as `bulk_create` would send it)."""
    model = type(objs[0])
    opts = model._meta
    fields = [
        f
        for f in opts.concrete_fields
        if not getattr(f, "generated", False) and not (f.primary_key and getattr(objs[0], f.attname) is None)
    ]
    query = InsertQuery(model)
    query.insert_values(fields, list(objs), raw=False)
    [(sql, params)] = query.get_compiler(using=connection.alias).as_sql()
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    if returning:
        columns = [str(getattr(opts.get_field(n), "column", n)) for n in returning]
        sql += " RETURNING " + ", ".join(connection.ops.quote_name(c) for c in columns)
    return sql, list(params)


def update_statement(obj: Model, fields: Sequence[str]) -> Statement:
    """The UPDATE `obj.save(update_fields=fields)` would send (`auto_now` fields set as there)."""
    opts = obj._meta
    values: list[Any] = []
    for name in fields:
        field = opts.get_field(name)
        values.append((field, None, field.pre_save(obj, False)))  # type: ignore[union-attr]
    query = UpdateQuery(type(obj))
    query.add_update_fields(values)
    query.add_q(Q(pk=obj.pk))
    sql, params = query.get_compiler(using=connection.alias).as_sql()
    return sql, list(params)


def write_together(statements: Sequence[Statement]) -> tuple[Any, ...] | None:
    """Send the statements as one; returns the first row the last one returns (None when it returns none)."""
    if not statements:
        return None
    *parts, (last_sql, last_params) = statements
    sql = last_sql
    params: list[Any] = []
    if parts:
        sql = "WITH " + ", ".join(f"w{i} AS ({s})" for i, (s, _) in enumerate(parts)) + " " + last_sql
        for _, p in parts:
            params.extend(p)
    params.extend(last_params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None
