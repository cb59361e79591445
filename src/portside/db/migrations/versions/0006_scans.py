"""scans: layer analyses, scan reports, CVE allowlists, scanner registrations, schedules

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "layer_analyses",
        sa.Column("digest", sa.String(length=150), nullable=False),
        sa.Column("analyzer_version", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_layer_analyses")),
    )
    op.create_table(
        "scan_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("digest", sa.String(length=150), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("registration_uuid", sa.String(length=36), nullable=False),
        sa.Column("mime_type", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        _timestamp("requested_at"),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_reports")),
        sa.UniqueConstraint("uuid", name=op.f("uq_scan_reports_uuid")),
        sa.UniqueConstraint(
            "digest",
            "registration_uuid",
            "mime_type",
            name=op.f("uq_scan_reports_digest_registration_uuid_mime_type"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_scan_reports_status", "scan_reports", ["status", "id"])
    op.create_table(
        "cve_allowlists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("items", sa.Text(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cve_allowlists")),
        sa.UniqueConstraint("project_id", name=op.f("uq_cve_allowlists_project_id")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "scanner_registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=True),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("auth", sa.String(length=32), server_default="", nullable=False),
        sa.Column("access_credential", sa.String(length=1024), server_default="", nullable=False),
        sa.Column("skip_cert_verify", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("use_internal_addr", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.false(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scanner_registrations")),
        sa.UniqueConstraint("uuid", name=op.f("uq_scanner_registrations_uuid")),
        sa.UniqueConstraint("name", name=op.f("uq_scanner_registrations_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "project_scanners",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("registration_uuid", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_scanners_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["registration_uuid"],
            ["scanner_registrations.uuid"],
            name=op.f("fk_project_scanners_registration_uuid_scanner_registrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_scanners")),
    )
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("cron", sa.String(length=128), server_default="", nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_schedules")),
    )


def downgrade() -> None:
    op.drop_table("schedules")
    op.drop_table("project_scanners")
    op.drop_table("scanner_registrations")
    op.drop_table("cve_allowlists")
    op.drop_index("ix_scan_reports_status", table_name="scan_reports")
    op.drop_table("scan_reports")
    op.drop_table("layer_analyses")
