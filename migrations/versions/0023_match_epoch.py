"""match epoch: one row that changes with every input of a bank's prospect list

A bank's prospect list matches every enterprise that shared with it against its products:
at a province's scale a hundred thousand rows read and matched on each request. This
migration adds the row ``match_epoch`` (``models.match``) and triggers that give it a new
``(n, stamp)`` in every transaction changing what the list reads (the columns in
``models.match.MATCH_INPUTS``), so that a web process may keep the matched list until the
row changes.

* PostgreSQL: a deferred constraint trigger per table, run at the commit; the first one of
  a transaction updates the row (named with its schema: the writer's search_path may
  differ), the others see the transaction's flag (``xinyidai.match_epoch_bumped``) and
  return. The row is locked only while the writer commits, and its change becomes visible
  together with the data that caused it. A ``TRUNCATE`` of one of the tables also counts (a
  statement trigger, at once: it holds the row until its transaction ends; the platform
  never truncates, the test suite does).
* SQLite: plain row triggers (one writer at a time; a rolled-back change takes its new
  stamp with it).

Restoring with ``--disable-triggers``, ``session_replication_role = replica`` or ``ALTER
TABLE ... DISABLE TRIGGER`` bypasses the epoch: restart the web processes after any of them.

Revision ID: 0023_match_epoch
Revises: 0022_record_refs_once
Create Date: 2026-12-07 19:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0023_match_epoch"
down_revision = "0022_record_refs_once"
branch_labels = None
depends_on = None

# As models.match.MATCH_INPUTS when this migration was written (a migration keeps its own
# copy: the model may change later, this migration may not).
INPUTS: dict[str, tuple[str, ...] | None] = {
    "authorization_grant": (
        "enterprise_id", "kind", "grantee_org_id", "all_banks", "scopes", "purpose",
        "valid_from", "valid_until", "paused_at", "revoked_at",
    ),
    "enterprise": (
        "id", "uscc", "name", "region_code", "industry_code", "size_class", "founded_on",
    ),
    "credit_profile": None,
    "loan_product": None,
    "loan": ("enterprise_id", "bank_org_id", "status"),
}  # fmt: skip

# {epoch} is match_epoch qualified by the schema the migration runs in: the function runs at
# the writer's commit, under the writer's search_path, which may name another schema.
BUMP_FUNCTION = """
CREATE FUNCTION match_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF current_setting('xinyidai.match_epoch_bumped', true) IS DISTINCT FROM 'yes' THEN
        UPDATE {epoch} SET n = n + 1, stamp = floor(random() * 9e18)::bigint WHERE id = 1;
        PERFORM set_config('xinyidai.match_epoch_bumped', 'yes', true);
    END IF;
    RETURN NULL;
END
$fn$
"""


def _events(table: str, columns: tuple[str, ...] | None) -> list[tuple[str, str]]:
    """(name suffix, event) of the triggers on ``table``."""
    update = f"UPDATE OF {', '.join(columns)}" if columns else "UPDATE"
    events = [("update", update), ("delete", "DELETE")]
    if table != "enterprise":  # nobody's prospect until a grant (an insert here) names it
        events.insert(0, ("insert", "INSERT"))
    return events


def upgrade():
    op.create_table(
        "match_epoch",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("stamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_epoch")),
    )
    op.execute("INSERT INTO match_epoch (id, n, stamp) VALUES (1, 0, 0)")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        schema = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
        quote = bind.dialect.identifier_preparer.quote
        op.execute(BUMP_FUNCTION.format(epoch=f"{quote(schema)}.match_epoch"))
        for table, columns in INPUTS.items():
            events = " OR ".join(event for _name, event in _events(table, columns))
            op.execute(
                f"CREATE CONSTRAINT TRIGGER match_epoch_{table} AFTER {events} ON {table} "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION match_epoch_bump()"
            )
            op.execute(
                f"CREATE TRIGGER match_epoch_{table}_truncate AFTER TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION match_epoch_bump()"
            )
        return
    for table, columns in INPUTS.items():
        for name, event in _events(table, columns):
            op.execute(
                f"CREATE TRIGGER match_epoch_{table}_{name} AFTER {event} ON {table} "
                "BEGIN UPDATE match_epoch SET n = n + 1, stamp = random() WHERE id = 1; END"
            )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in INPUTS:
            op.execute(f"DROP TRIGGER match_epoch_{table} ON {table}")
            op.execute(f"DROP TRIGGER match_epoch_{table}_truncate ON {table}")
        op.execute("DROP FUNCTION match_epoch_bump()")
    else:
        for table, columns in INPUTS.items():
            for name, _event in _events(table, columns):
                op.execute(f"DROP TRIGGER match_epoch_{table}_{name}")
    op.drop_table("match_epoch")
