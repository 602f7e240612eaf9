"""record references checked per statement on PostgreSQL

The six source-record tables receive records by the hundred thousand through ``COPY``.
A native foreign key checks every inserted row on its own (one lookup and one row lock per
row and per key): on the ingestion benchmark the two foreign keys of ``tax`` made ``COPY``
three times slower than the same table without them. On PostgreSQL this migration replaces
the foreign keys ``enterprise_id -> enterprise.id`` and ``batch_id -> ingestion_batch.id``
of those tables by the same rule checked once per statement:

* after every INSERT or UPDATE statement on a record table, the distinct enterprises and
  batches its new rows name (a few thousand ids for a hundred thousand rows, each looked up
  once) are locked ``FOR KEY SHARE`` (as a foreign key locks them, so a
  concurrent delete waits) and any id not present raises ``foreign_key_violation``
  (SQLSTATE 23503, an ``IntegrityError`` like the foreign key's own);
* deleting an enterprise or a batch, or changing its id, while a record still names it
  raises ``foreign_key_violation`` (as ``ON DELETE NO ACTION`` would). ``TRUNCATE`` fires
  no row trigger and is not guarded: the platform never truncates (an administrator who
  truncates ``enterprise`` must truncate the record tables in the same statement).

SQLite keeps the native foreign keys (its checks are cheap, and the models still declare
them; ``models.records.trigger_enforced`` tells the schema comparison about the difference).

Revision ID: 0019_record_refs
Revises: 0018_scale
Create Date: 2026-12-05 12:30:00
"""

from alembic import op

revision = "0019_record_refs"
down_revision = "0018_scale"
branch_labels = None
depends_on = None

TABLES = ("tax", "tax_credit_rating", "social_insurance", "utilities", "provident_fund",
          "public_credit")  # fmt: skip

CHECK_FUNCTION = """
CREATE FUNCTION record_references_check() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    missing bigint;
BEGIN
    PERFORM 1 FROM enterprise AS e
     WHERE e.id IN (SELECT DISTINCT n.enterprise_id FROM new_rows AS n) FOR KEY SHARE OF e;
    SELECT d.id INTO missing FROM (SELECT DISTINCT n.enterprise_id AS id FROM new_rows AS n) AS d
     WHERE d.id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM enterprise AS e WHERE e.id = d.id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "fk_%_enterprise_id_enterprise"', TG_TABLE_NAME, TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (enterprise_id)=(%s) is not present in table "enterprise".', missing),
                  TABLE = TG_TABLE_NAME,
                  CONSTRAINT = format('fk_%s_enterprise_id_enterprise', TG_TABLE_NAME);
    END IF;
    PERFORM 1 FROM ingestion_batch AS b
     WHERE b.id IN (SELECT DISTINCT n.batch_id FROM new_rows AS n) FOR KEY SHARE OF b;
    SELECT d.id INTO missing FROM (SELECT DISTINCT n.batch_id AS id FROM new_rows AS n) AS d
     WHERE d.id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ingestion_batch AS b WHERE b.id = d.id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "fk_%_batch_id_ingestion_batch"', TG_TABLE_NAME, TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (batch_id)=(%s) is not present in table "ingestion_batch".', missing),
                  TABLE = TG_TABLE_NAME,
                  CONSTRAINT = format('fk_%s_batch_id_ingestion_batch', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$fn$
"""


def _referenced_function(name: str, parent: str, column: str) -> str:
    """A row trigger function on ``parent`` refusing to delete (or re-key) a row that a
    record still names in ``column``."""
    checks = "\n".join(
        f"""    IF EXISTS (SELECT 1 FROM {table} WHERE {column} = OLD.id) THEN
        RAISE EXCEPTION 'update or delete on table "{parent}" violates foreign key constraint "fk_{table}_{column}_{parent}" on table "{table}"'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (id)=(%s) is still referenced from table "{table}".', OLD.id),
                  TABLE = '{table}',
                  CONSTRAINT = 'fk_{table}_{column}_{parent}';
    END IF;"""
        for table in TABLES
    )
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
{checks}
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$fn$
"""


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(CHECK_FUNCTION)
    op.execute(_referenced_function("enterprise_records_check", "enterprise", "enterprise_id"))
    op.execute(_referenced_function("ingestion_batch_records_check", "ingestion_batch", "batch_id"))
    for table in TABLES:
        op.drop_constraint(f"fk_{table}_enterprise_id_enterprise", table, type_="foreignkey")
        op.drop_constraint(f"fk_{table}_batch_id_ingestion_batch", table, type_="foreignkey")
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER {table}_references_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                f"EXECUTE FUNCTION record_references_check()"
            )
    # A batch's id is never changed, so an index on batch_id is not needed for these checks
    # to be right; deleting a batch (never done by the platform) scans the record tables.
    op.execute(
        "CREATE TRIGGER enterprise_records BEFORE DELETE OR UPDATE OF id ON enterprise "
        "FOR EACH ROW EXECUTE FUNCTION enterprise_records_check()"
    )
    op.execute(
        "CREATE TRIGGER ingestion_batch_records BEFORE DELETE OR UPDATE OF id ON ingestion_batch "
        "FOR EACH ROW EXECUTE FUNCTION ingestion_batch_records_check()"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER ingestion_batch_records ON ingestion_batch")
    op.execute("DROP TRIGGER enterprise_records ON enterprise")
    for table in TABLES:
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER {table}_references_{event} ON {table}")
        op.create_foreign_key(
            f"fk_{table}_enterprise_id_enterprise", table, "enterprise", ["enterprise_id"], ["id"]
        )
        op.create_foreign_key(
            f"fk_{table}_batch_id_ingestion_batch", table, "ingestion_batch", ["batch_id"], ["id"]
        )
    op.execute("DROP FUNCTION ingestion_batch_records_check()")
    op.execute("DROP FUNCTION enterprise_records_check()")
    op.execute("DROP FUNCTION record_references_check()")
