"""registry core: users, keys, repositories, blobs, manifests, tags, uploads

Revision ID: 0001
Revises:
Create Date: 2026-11-27 10:39:13.250928
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(length=150), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_blobs")),
    )
    op.create_table(
        "repositories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=255).with_variant(sa.String(length=255, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repositories")),
        sa.UniqueConstraint("name", name=op.f("uq_repositories_name")),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("private_pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index("ix_uploads_updated_at", ["updated_at"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("realname", sa.String(length=255), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("sysadmin_flag", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "manifests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=150), nullable=False),
        sa.Column("media_type", sa.String(length=255), nullable=False),
        sa.Column("artifact_type", sa.String(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("subject_digest", sa.String(length=150), nullable=True),
        sa.Column("annotations", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_manifests_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manifests")),
        sa.UniqueConstraint(
            "repository_id", "digest", name=op.f("uq_manifests_repository_id_digest")
        ),
    )
    with op.batch_alter_table("manifests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_manifests_subject", ["repository_id", "subject_digest"], unique=False
        )

    op.create_table(
        "repository_blobs",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=150), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["digest"], ["blobs.digest"], name=op.f("fk_repository_blobs_digest_blobs")
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_repository_blobs_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "digest", name=op.f("pk_repository_blobs")),
    )
    with op.batch_alter_table("repository_blobs", schema=None) as batch_op:
        batch_op.create_index("ix_repository_blobs_digest", ["digest"], unique=False)

    op.create_table(
        "manifest_references",
        sa.Column("manifest_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=150), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["manifest_id"],
            ["manifests.id"],
            name=op.f("fk_manifest_references_manifest_id_manifests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "manifest_id", "digest", "kind", name=op.f("pk_manifest_references")
        ),
    )
    with op.batch_alter_table("manifest_references", schema=None) as batch_op:
        batch_op.create_index("ix_manifest_references_digest", ["digest"], unique=False)

    op.create_table(
        "tags",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=128).with_variant(sa.String(length=128, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("manifest_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["manifest_id"],
            ["manifests.id"],
            name=op.f("fk_tags_manifest_id_manifests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_tags_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "name", name=op.f("pk_tags")),
    )
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.create_index("ix_tags_manifest_id", ["manifest_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.drop_index("ix_tags_manifest_id")

    op.drop_table("tags")
    with op.batch_alter_table("manifest_references", schema=None) as batch_op:
        batch_op.drop_index("ix_manifest_references_digest")

    op.drop_table("manifest_references")
    with op.batch_alter_table("repository_blobs", schema=None) as batch_op:
        batch_op.drop_index("ix_repository_blobs_digest")

    op.drop_table("repository_blobs")
    with op.batch_alter_table("manifests", schema=None) as batch_op:
        batch_op.drop_index("ix_manifests_subject")

    op.drop_table("manifests")
    op.drop_table("users")
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index("ix_uploads_updated_at")

    op.drop_table("uploads")
    op.drop_table("signing_keys")
    op.drop_table("repositories")
    op.drop_table("blobs")
