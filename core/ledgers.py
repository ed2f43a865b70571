"""Append-only ledgers, guarded by the database: a correction is a new row, never an edit.

A ledger model says so by inheriting `AppendOnlyLedger`; its migration applies `MakeAppendOnly(model_name)`, which
puts a trigger on its table that refuses every UPDATE and DELETE (`restrict_violation`), whoever runs it. A test
finds every `AppendOnlyLedger` model and proves both are refused.
"""

from __future__ import annotations

from typing import Any

from django.db.migrations.operations.base import Operation

REFUSE_FUNCTION = "core_refuse_ledger_change"

_CREATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {REFUSE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
"""


class AppendOnlyLedger:
    """Marks a model whose rows are never updated or deleted (its migration applies `MakeAppendOnly`)."""


def append_only_trigger(table: str) -> str:
    return f"{table}_append_only"


class MakeAppendOnly(Operation):
    """Refuse UPDATE and DELETE on a ledger model's table with a trigger (created or replaced)."""

    reversible = True
    reduces_to_sql = True

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def _table(self, app_label: str, state: Any) -> str:
        return str(state.apps.get_model(app_label, self.model_name)._meta.db_table)

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        table = self._table(app_label, to_state)
        trigger = schema_editor.quote_name(append_only_trigger(table))
        quoted = schema_editor.quote_name(table)
        schema_editor.execute(_CREATE_FUNCTION, None)  # no parameters: its % are PL/pgSQL placeholders
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {quoted}")
        schema_editor.execute(
            f"CREATE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {quoted} "
            f"FOR EACH ROW EXECUTE FUNCTION {REFUSE_FUNCTION}()"
        )

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        table = self._table(app_label, from_state)
        trigger = schema_editor.quote_name(append_only_trigger(table))
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {schema_editor.quote_name(table)}")

    def describe(self) -> str:
        return f"Make {self.model_name} append-only"

    def deconstruct(self) -> tuple[str, list, dict]:
        return (f"{__name__}.{type(self).__name__}", [], {"model_name": self.model_name})
