"""upload_chunks: an upload's committed size and chunks, so appends are compare-and-set

Before, the bytes in storage were the truth about an upload's progress, and two replicas
appending at once could overwrite each other's bytes. Now each append stores its bytes under a
key of its own and commits them by a compare-and-set on ``size``. Uploads in progress when this
runs cannot be continued (their bytes are in the old single key): their rows are dropped, and
the purge removes the bytes; clients start those uploads again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("size", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("chunks", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    op.execute("DELETE FROM uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("chunks")
        batch.drop_column("size")
