"""Table definitions (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them.

Ordering columns use the "C" collation on PostgreSQL so tag and catalog pagination is by byte
order, as the distribution spec asks, whatever the database's locale. SQLite's default BINARY
collation already is.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = [
    "artifact_labels",
    "audit_logs",
    "blobs",
    "configurations",
    "cve_allowlists",
    "cve_exports",
    "labels",
    "layer_analyses",
    "manifest_references",
    "manifests",
    "metadata",
    "project_blobs",
    "project_members",
    "project_metadata",
    "project_scanners",
    "projects",
    "quotas",
    "repositories",
    "repository_blobs",
    "robot_permissions",
    "robots",
    "scan_reports",
    "scanner_registrations",
    "schedules",
    "sessions",
    "signing_keys",
    "tags",
    "uploads",
    "usergroup_users",
    "usergroups",
    "users",
    "vuln_advisories",
    "vuln_affected",
    "vuln_db_meta",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


# Tables whose ids name an identity (tokens carry account ids; caches and audit entries carry
# project ids) use sqlite_autoincrement, so SQLite never hands a deleted row's id to a new one,
# as PostgreSQL's sequences never do.


def ordered_name(length: int) -> String:
    """A string column whose ORDER BY is byte order on every supported database."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def _timestamp(name: str) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=False)


users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(255), nullable=False, unique=True),
    Column("email", String(255), nullable=True),
    Column("realname", String(255), nullable=True),
    Column("password_hash", String(255), nullable=False),
    Column("sysadmin_flag", Boolean, nullable=False, default=False),
    Column("comment", String(1024), nullable=True),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    sqlite_autoincrement=True,
)

# Harbor's group types: 1 LDAP, 2 HTTP, 3 OIDC. Portside's local groups use type 2 ("HTTP"),
# and their members are listed in usergroup_users.
usergroups = Table(
    "usergroups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("group_name", String(255), nullable=False, unique=True),
    Column("group_type", Integer, nullable=False),
    Column("ldap_group_dn", String(512), nullable=True),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    sqlite_autoincrement=True,
)

usergroup_users = Table(
    "usergroup_users",
    metadata,
    Column("group_id", Integer, ForeignKey("usergroups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_usergroup_users_user_id", "user_id"),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", ordered_name(255), nullable=False, unique=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    sqlite_autoincrement=True,
)

# Harbor's project metadata: string values under fixed keys ("public", "auto_scan", ...).
project_metadata = Table(
    "project_metadata",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", String(255), nullable=False),
)

# entity_type "u" (user) or "g" (group); role is Harbor's role id (1 projectAdmin, 2 developer,
# 3 guest, 4 maintainer, 5 limitedGuest).
project_members = Table(
    "project_members",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("entity_id", Integer, nullable=False),
    Column("entity_type", String(1), nullable=False),
    Column("role", Integer, nullable=False),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    UniqueConstraint("project_id", "entity_id", "entity_type"),
    Index("ix_project_members_entity", "entity_type", "entity_id"),
    sqlite_autoincrement=True,
)

# A robot's name is stored without the configurable prefix; project robots are named
# "<project>+<name>" as in Harbor. secret_version changes on every refresh, and tokens carry
# it, so a refresh invalidates every token issued before it.
robots = Table(
    "robots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", String(1024), nullable=True),
    Column("level", String(16), nullable=False),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=True),
    Column("secret_hash", String(255), nullable=False),
    Column("secret_version", Integer, nullable=False),
    Column("duration_days", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("disabled", Boolean, nullable=False),
    Column("creator", String(255), nullable=True),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    sqlite_autoincrement=True,
)

# One row per permission block of a robot: kind "project" with a project name (or "*") as
# namespace, and the access list as JSON [{"resource", "action", "effect"}].
robot_permissions = Table(
    "robot_permissions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("robot_id", Integer, ForeignKey("robots.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("namespace", String(255), nullable=False),
    Column("access", Text, nullable=False),
    Index("ix_robot_permissions_robot_id", "robot_id"),
)

# hard_bytes -1 means unlimited.
quotas = Table(
    "quotas",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("hard_bytes", BigInteger, nullable=False),
    _timestamp("created_at"),
    _timestamp("updated_at"),
)

# The unique blobs a project stores, each counted once towards its quota. Usage is the sum of
# sizes here: no shared counter row that every push would have to update.
project_blobs = Table(
    "project_blobs",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(150), primary_key=True),
    Column("size", BigInteger, nullable=False),
    _timestamp("created_at"),
)

audit_logs = Table(
    "audit_logs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("op_time", DateTime(timezone=True), nullable=False),
    Column("username", String(255), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("resource_type", String(32), nullable=False),
    Column("resource", String(512), nullable=False),
    Column("result", String(16), nullable=False),
    Column("client_ip", String(64), nullable=True),
    Column("project_id", Integer, nullable=True),
    Column("detail", String(1024), nullable=True),
    Index("ix_audit_logs_op_time", "op_time"),
    Index("ix_audit_logs_project_id", "project_id", "op_time"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("private_pem", Text, nullable=False),
    _timestamp("created_at"),
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", ordered_name(255), nullable=False, unique=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=True),
    Column("description", Text, nullable=True),
    Column("pull_count", BigInteger, nullable=False, server_default="0"),
    _timestamp("created_at"),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    Index("ix_repositories_project_id", "project_id"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(150), primary_key=True),
    Column("size", BigInteger, nullable=False),
    _timestamp("created_at"),
)

# Which repository may serve which blob. Storage holds each blob once, whatever uses it.
repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(150), ForeignKey("blobs.digest"), primary_key=True),
    _timestamp("created_at"),
    Index("ix_repository_blobs_digest", "digest"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("digest", String(150), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255), nullable=True),
    Column("size", BigInteger, nullable=False),
    Column("subject_digest", String(150), nullable=True),
    Column("annotations", Text, nullable=True),
    # config.mediaType of image manifests: what tells a Helm chart or an SBOM from an image.
    Column("config_media_type", String(255), nullable=True),
    _timestamp("created_at"),
    Column("pull_time", DateTime(timezone=True), nullable=True),
    UniqueConstraint("repository_id", "digest"),
    Index("ix_manifests_subject", "repository_id", "subject_digest"),
    Index("ix_manifests_repository_created", "repository_id", "created_at"),
)

# Blobs and child manifests a manifest points to: what delete and GC must respect.
manifest_references = Table(
    "manifest_references",
    metadata,
    Column(
        "manifest_id",
        Integer,
        ForeignKey("manifests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("digest", String(150), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Index("ix_manifest_references_digest", "digest"),
)

# A tag's id is Harbor's Tag.id: never reused (sqlite_autoincrement), so a tag deleted and
# pushed again gets a new one, while moving a tag to another manifest keeps it.
# (repository_id, name) is unique: the lookup key and the index of name-ordered tag listing.
tags = Table(
    "tags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", ordered_name(128), nullable=False),
    Column(
        "manifest_id",
        Integer,
        ForeignKey("manifests.id", ondelete="CASCADE"),
        nullable=False,
    ),
    _timestamp("updated_at"),
    UniqueConstraint("repository_id", "name"),
    Index("ix_tags_manifest_id", "manifest_id"),
    sqlite_autoincrement=True,
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("repository", String(255), nullable=False),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    # Committed bytes, and the chunks holding them (see registry.uploads): appends are a
    # compare-and-set on ``size``.
    Column("size", BigInteger, nullable=False, server_default="0"),
    Column("chunks", Text, nullable=False, server_default=""),
    Index("ix_uploads_updated_at", "updated_at"),
)


# Harbor's labels: scope "g" (global, project_id NULL) or "p" (one project's).
labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("description", String(1024), nullable=True),
    Column("color", String(16), nullable=True),
    Column("scope", String(1), nullable=False),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=True),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    UniqueConstraint("name", "scope", "project_id"),
    Index(
        "ix_labels_global_name",
        "name",
        unique=True,
        sqlite_where=text("scope = 'g'"),
        postgresql_where=text("scope = 'g'"),
    ),
    sqlite_autoincrement=True,
)

artifact_labels = Table(
    "artifact_labels",
    metadata,
    Column(
        "manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("label_id", Integer, ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True),
    _timestamp("created_at"),
    Index("ix_artifact_labels_label_id", "label_id"),
)

# System settings changed at run time through /api/v2.0/configurations (JSON values); they
# override the file and environment for the keys listed in portside.system.configurations.
configurations = Table(
    "configurations",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    _timestamp("updated_at"),
)

# UI login sessions. The cookie holds a random token; only its SHA-256 is stored.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    _timestamp("created_at"),
    _timestamp("expires_at"),
    Index("ix_sessions_expires_at", "expires_at"),
)


# -- scanning ---------------------------------------------------------------------------------
# What the scanner learnt from each layer, by layer digest: content addressed, so a base layer
# shared by many images is read once. ``analyzer_version`` retires results of older analyzers.
layer_analyses = Table(
    "layer_analyses",
    metadata,
    Column("digest", String(150), primary_key=True),
    Column("analyzer_version", Integer, nullable=False),
    Column("result", Text, nullable=False),
    _timestamp("created_at"),
)

# One row per (artifact digest, scanner, report type): the job while it is queued or running,
# then its outcome. Rows are claimed by workers on any replica (status Pending -> Running) and
# ``heartbeat_at`` lets another replica take back a job whose worker died.
scan_reports = Table(
    "scan_reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("digest", String(150), nullable=False),
    Column("repository", String(255), nullable=False),
    Column("registration_uuid", String(36), nullable=False),
    Column("mime_type", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("severity", String(16), nullable=True),
    Column("summary", Text, nullable=True),
    Column("report", Text, nullable=True),
    Column("message", Text, nullable=True),
    Column("requested_by", String(255), nullable=True),
    _timestamp("requested_at"),
    Column("start_time", DateTime(timezone=True), nullable=True),
    Column("end_time", DateTime(timezone=True), nullable=True),
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("digest", "registration_uuid", "mime_type"),
    Index("ix_scan_reports_status", "status", "id"),
    sqlite_autoincrement=True,
)

# CVE allowlists: project_id 0 is the system allowlist. ``items`` is a JSON list of CVE ids.
cve_allowlists = Table(
    "cve_allowlists",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, nullable=False, unique=True),
    Column("expires_at", BigInteger, nullable=True),
    Column("items", Text, nullable=False),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    sqlite_autoincrement=True,
)

# External scanners speaking Harbor's pluggable scanner API. The built-in scanner is a row too
# (url ``builtin:``), so defaults and per-project choices treat both alike.
scanner_registrations = Table(
    "scanner_registrations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", String(1024), nullable=True),
    Column("url", String(1024), nullable=False),
    Column("auth", String(32), nullable=False, server_default=""),
    Column("access_credential", String(1024), nullable=False, server_default=""),
    Column("skip_cert_verify", Boolean, nullable=False, server_default=text("false")),
    Column("use_internal_addr", Boolean, nullable=False, server_default=text("false")),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("is_default", Boolean, nullable=False, server_default=text("false")),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    sqlite_autoincrement=True,
)

project_scanners = Table(
    "project_scanners",
    metadata,
    Column(
        "project_id",
        Integer,
        ForeignKey("projects.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "registration_uuid",
        String(36),
        ForeignKey("scanner_registrations.uuid", ondelete="CASCADE"),
        nullable=False,
    ),
)

# Named schedules (scan-all today). ``claimed_at`` lets exactly one replica run each due time.
schedules = Table(
    "schedules",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("cron", String(128), nullable=False, server_default=""),
    Column("last_run_at", DateTime(timezone=True), nullable=True),
    _timestamp("updated_at"),
)


# -- vulnerability database -------------------------------------------------------------------
# Advisories imported from OSV records (portside.scanner.vulndb), in the database so every
# replica matches against the same data. ``record`` is the parsed advisory as compact JSON.
vuln_advisories = Table(
    "vuln_advisories",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("modified", String(64), nullable=False),
    Column("record", Text, nullable=False),
)

# Which advisories name which package: the lookup a scan makes, by (ecosystem, name) with the
# name normalised (portside.scanner.matching.normalize_name). The primary key is that index.
vuln_affected = Table(
    "vuln_affected",
    metadata,
    Column("ecosystem", String(255), primary_key=True),
    Column("name", String(512), primary_key=True),
    Column(
        "advisory_id",
        String(128),
        ForeignKey("vuln_advisories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Index("ix_vuln_affected_advisory_id", "advisory_id"),
)

# One row (id 1): what was imported last. ``generation`` grows with every import, so a replica
# learns with one small query that its cached advisories are stale.
vuln_db_meta = Table(
    "vuln_db_meta",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False),
    Column("advisory_count", Integer, nullable=False),
    Column("source", Text, nullable=False),
    _timestamp("imported_at"),
)


# -- CVE exports --------------------------------------------------------------------------------
# Harbor's scan data export executions. The CSV is in storage under layout.export_path(uuid);
# ``file_size`` is NULL until it is there (and stays NULL when nothing matched, as in Harbor).
# ``project_ids`` is a JSON list: who may read the execution is decided on those projects.
cve_exports = Table(
    "cve_exports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("user_id", Integer, nullable=False),
    Column("user_name", String(255), nullable=False),
    Column("job_name", String(255), nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    Column("status_text", Text, nullable=False, server_default=""),
    Column("trigger", String(16), nullable=False),
    _timestamp("start_time"),
    Column("end_time", DateTime(timezone=True), nullable=True),
    Column("file_size", BigInteger, nullable=True),
    Column("project_ids", Text, nullable=False),
    Index("ix_cve_exports_user_name", "user_name", "id"),
    sqlite_autoincrement=True,
)
