"""identity and access: users, groups, projects, members, robots, quotas, audit log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:56:05.992014
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("op_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource", sa.String(length=512), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(length=1024), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_logs")),
    )
    with op.batch_alter_table("audit_logs", schema=None) as batch_op:
        batch_op.create_index("ix_audit_logs_op_time", ["op_time"], unique=False)
        batch_op.create_index("ix_audit_logs_project_id", ["project_id", "op_time"], unique=False)

    op.create_table(
        "usergroups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_name", sa.String(length=255), nullable=False),
        sa.Column("group_type", sa.Integer(), nullable=False),
        sa.Column("ldap_group_dn", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usergroups")),
        sa.UniqueConstraint("group_name", name=op.f("uq_usergroups_group_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=255).with_variant(sa.String(length=255, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_projects_owner_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "usergroup_users",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["usergroups.id"],
            name=op.f("fk_usergroup_users_group_id_usergroups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_usergroup_users_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_usergroup_users")),
    )
    with op.batch_alter_table("usergroup_users", schema=None) as batch_op:
        batch_op.create_index("ix_usergroup_users_user_id", ["user_id"], unique=False)

    op.create_table(
        "project_blobs",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=150), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_blobs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "digest", name=op.f("pk_project_blobs")),
    )
    op.create_table(
        "project_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("entity_type", sa.String(length=1), nullable=False),
        sa.Column("role", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_members_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_members")),
        sa.UniqueConstraint(
            "project_id",
            "entity_id",
            "entity_type",
            name=op.f("uq_project_members_project_id_entity_id_entity_type"),
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_project_members_entity", ["entity_type", "entity_id"], unique=False
        )

    op.create_table(
        "project_metadata",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_metadata_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "name", name=op.f("pk_project_metadata")),
    )
    op.create_table(
        "quotas",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("hard_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_quotas_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_quotas")),
    )
    op.create_table(
        "robots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("secret_hash", sa.String(length=255), nullable=False),
        sa.Column("secret_version", sa.Integer(), nullable=False),
        sa.Column("duration_days", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("creator", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_robots_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_robots")),
        sa.UniqueConstraint("name", name=op.f("uq_robots_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "robot_permissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("robot_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("access", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["robot_id"],
            ["robots.id"],
            name=op.f("fk_robot_permissions_robot_id_robots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_robot_permissions")),
    )
    with op.batch_alter_table("robot_permissions", schema=None) as batch_op:
        batch_op.create_index("ix_robot_permissions_robot_id", ["robot_id"], unique=False)

    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch_op.create_index("ix_repositories_project_id", ["project_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_repositories_project_id_projects"),
            "projects",
            ["project_id"],
            ["id"],
            ondelete="CASCADE",
        )

    # Recreated on SQLite to add AUTOINCREMENT: a deleted user's id must never be reused.
    sqlite = op.get_context().dialect.name == "sqlite"
    with op.batch_alter_table(
        "users",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch_op:
        batch_op.add_column(sa.Column("comment", sa.String(length=1024), nullable=True))

    _assign_existing_repositories()


def _assign_existing_repositories() -> None:
    """Repositories pushed before projects existed: each first path component becomes a
    private project owned by nobody, so no repository is left outside a project, and what they
    hold counts towards the project's quota."""
    bind = op.get_bind()
    names = [row[0] for row in bind.execute(sa.text("SELECT name FROM repositories"))]
    stamp = dt.datetime.now(dt.UTC)
    for project in sorted({name.split("/", 1)[0] for name in names}):
        bind.execute(
            sa.text("INSERT INTO projects (name, created_at, updated_at) VALUES (:name, :at, :at)"),
            {"name": project, "at": stamp},
        )
    bind.execute(
        sa.text(
            "UPDATE repositories SET project_id = (SELECT p.id FROM projects p "
            "WHERE repositories.name = p.name "
            "OR substr(repositories.name, 1, length(p.name) + 1) = p.name || '/')"
        )
    )
    # Quota usage of what was pushed before projects existed: each project's unique blobs,
    # manifests included (their bytes are stored as blobs too).
    bind.execute(
        sa.text(
            "INSERT INTO project_blobs (project_id, digest, size, created_at) "
            "SELECT project_id, digest, MAX(size), :at FROM ("
            "  SELECT r.project_id AS project_id, b.digest AS digest, b.size AS size "
            "  FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id "
            "  JOIN blobs b ON b.digest = rb.digest "
            "  UNION ALL "
            "  SELECT r.project_id, m.digest, m.size "
            "  FROM manifests m JOIN repositories r ON r.id = m.repository_id"
            ") AS used WHERE project_id IS NOT NULL GROUP BY project_id, digest"
        ),
        {"at": stamp},
    )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("comment")

    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_repositories_project_id_projects"), type_="foreignkey"
        )
        batch_op.drop_index("ix_repositories_project_id")
        batch_op.drop_column("description")
        batch_op.drop_column("project_id")

    with op.batch_alter_table("robot_permissions", schema=None) as batch_op:
        batch_op.drop_index("ix_robot_permissions_robot_id")

    op.drop_table("robot_permissions")
    op.drop_table("robots")
    op.drop_table("quotas")
    op.drop_table("project_metadata")
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.drop_index("ix_project_members_entity")

    op.drop_table("project_members")
    op.drop_table("project_blobs")
    with op.batch_alter_table("usergroup_users", schema=None) as batch_op:
        batch_op.drop_index("ix_usergroup_users_user_id")

    op.drop_table("usergroup_users")
    op.drop_table("projects")
    op.drop_table("usergroups")
    with op.batch_alter_table("audit_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_logs_project_id")
        batch_op.drop_index("ix_audit_logs_op_time")

    op.drop_table("audit_logs")
