"""cve_exports: Harbor's scan data (CVE) export executions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cve_exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("job_name", sa.String(length=255), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_text", sa.Text(), server_default="", nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
        sa.Column("project_ids", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cve_exports")),
        sa.UniqueConstraint("uuid", name=op.f("uq_cve_exports_uuid")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_cve_exports_user_name", "cve_exports", ["user_name", "id"])


def downgrade() -> None:
    op.drop_index("ix_cve_exports_user_name", table_name="cve_exports")
    op.drop_table("cve_exports")
