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
)

__all__ = [
    "blobs",
    "manifest_references",
    "manifests",
    "metadata",
    "repositories",
    "repository_blobs",
    "signing_keys",
    "tags",
    "uploads",
    "users",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


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
    _timestamp("created_at"),
    _timestamp("updated_at"),
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
    _timestamp("created_at"),
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
    _timestamp("created_at"),
    UniqueConstraint("repository_id", "digest"),
    Index("ix_manifests_subject", "repository_id", "subject_digest"),
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

tags = Table(
    "tags",
    metadata,
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", ordered_name(128), primary_key=True),
    Column(
        "manifest_id",
        Integer,
        ForeignKey("manifests.id", ondelete="CASCADE"),
        nullable=False,
    ),
    _timestamp("updated_at"),
    Index("ix_tags_manifest_id", "manifest_id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("repository", String(255), nullable=False),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    Index("ix_uploads_updated_at", "updated_at"),
)
