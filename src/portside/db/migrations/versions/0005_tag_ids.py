"""tag ids (Harbor's Tag.id)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 16:00:00

Tags were keyed by (repository_id, name) only, and the API made up their ids from a hash. Harbor
clients keep a tag's id, so a tag gets a real one: an integer primary key that is never reused
(SQLite AUTOINCREMENT, a PostgreSQL sequence), so a deleted and re-created tag has a new id.
(repository_id, name) stays unique: the same index serves tag lookups and name-ordered paging.
Existing tags get ids in the order the table holds them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_UNIQUE = "uq_tags_repository_id_name"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot change a primary key in place; the batch rebuild copies the rows into
        # the new table, where the new rowid column numbers them.
        with op.batch_alter_table(
            "tags", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            batch.drop_constraint("pk_tags", type_="primary")
            batch.add_column(
                sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
                insert_before="repository_id",
            )
            batch.create_unique_constraint(_UNIQUE, ["repository_id", "name"])
        return
    op.create_unique_constraint(_UNIQUE, "tags", ["repository_id", "name"])
    op.drop_constraint("pk_tags", "tags", type_="primary")
    # SERIAL, like every other id column: adding it numbers the existing rows.
    op.execute("ALTER TABLE tags ADD COLUMN id SERIAL NOT NULL")
    op.create_primary_key("pk_tags", "tags", ["id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "tags", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ) as batch:
            batch.drop_constraint(_UNIQUE, type_="unique")
            batch.drop_column("id")
            batch.create_primary_key("pk_tags", ["repository_id", "name"])
        return
    op.drop_constraint("pk_tags", "tags", type_="primary")
    op.drop_column("tags", "id")
    op.create_primary_key("pk_tags", "tags", ["repository_id", "name"])
    op.drop_constraint(_UNIQUE, "tags", type_="unique")
