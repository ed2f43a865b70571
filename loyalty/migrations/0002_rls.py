from django.db import migrations

from core.tenancy import EnableRowLevelSecurity

TENANT_MODELS = (
    "LoyaltyProgram",
    "LoyaltyTier",
    "LoyaltyAccount",
    "LoyaltyOperation",
    "LoyaltyTransaction",
    "PointsAward",
    "AwardAllocation",
    "PurchaseReversal",
    "TierChange",
    "StampRule",
    "StampCard",
    "StampEntry",
    "StampReward",
)

# The ledgers are append-only: a correction is a new row, never an edit.
APPEND_ONLY_TABLES = (
    "loyalty_loyaltytransaction",
    "loyalty_awardallocation",
    "loyalty_purchasereversal",
    "loyalty_tierchange",
    "loyalty_stampentry",
)

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION loyalty_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
"""


def _trigger_sql(table: str) -> tuple[str, str]:
    name = f"{table}_append_only"
    return (
        f"CREATE TRIGGER {name} BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION loyalty_refuse_change();",
        f"DROP TRIGGER IF EXISTS {name} ON {table};",
    )


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0001_initial")]

    operations = [
        *(EnableRowLevelSecurity(model) for model in TENANT_MODELS),
        migrations.RunSQL(CREATE_FUNCTION, "DROP FUNCTION IF EXISTS loyalty_refuse_change();"),
        *(migrations.RunSQL(*_trigger_sql(table)) for table in APPEND_ONLY_TABLES),
    ]
