"""artifacts: labels, pull times, configurations, sessions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 13:52:08.501298
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "configurations",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_configurations")),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("ix_sessions_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=True),
        sa.Column("color", sa.String(length=16), nullable=True),
        sa.Column("scope", sa.String(length=1), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_labels_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
        sa.UniqueConstraint(
            "name", "scope", "project_id", name=op.f("uq_labels_name_scope_project_id")
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.create_index(
            "ix_labels_global_name",
            ["name"],
            unique=True,
            sqlite_where=sa.text("scope = 'g'"),
            postgresql_where=sa.text("scope = 'g'"),
        )

    op.create_table(
        "artifact_labels",
        sa.Column("manifest_id", sa.Integer(), nullable=False),
        sa.Column("label_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["label_id"],
            ["labels.id"],
            name=op.f("fk_artifact_labels_label_id_labels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["manifest_id"],
            ["manifests.id"],
            name=op.f("fk_artifact_labels_manifest_id_manifests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("manifest_id", "label_id", name=op.f("pk_artifact_labels")),
    )
    with op.batch_alter_table("artifact_labels", schema=None) as batch_op:
        batch_op.create_index("ix_artifact_labels_label_id", ["label_id"], unique=False)

    with op.batch_alter_table("manifests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("config_media_type", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("pull_time", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_manifests_repository_created", ["repository_id", "created_at"], unique=False
        )

    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pull_count", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("pull_count")

    with op.batch_alter_table("manifests", schema=None) as batch_op:
        batch_op.drop_index("ix_manifests_repository_created")
        batch_op.drop_column("pull_time")
        batch_op.drop_column("config_media_type")

    with op.batch_alter_table("artifact_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_artifact_labels_label_id")

    op.drop_table("artifact_labels")
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_labels_global_name",
            sqlite_where=sa.text("scope = 'g'"),
            postgresql_where=sa.text("scope = 'g'"),
        )

    op.drop_table("labels")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_expires_at")

    op.drop_table("sessions")
    op.drop_table("configurations")
