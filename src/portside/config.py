"""One typed settings tree, read from a YAML file and ``PORTSIDE_*`` environment variables.

Precedence, highest first: environment, YAML file, defaults. Nested keys use ``__`` in the
environment: ``storage.s3.bucket`` is ``PORTSIDE_STORAGE__S3__BUCKET``. The admin password is the
one flat exception, ``PORTSIDE_ADMIN_PASSWORD``, because that is what people look for.

Every key is documented in ``docs/configuration.md``; a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from limits import parse as parse_limit
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from portside.audit.syslog import parse_syslog_address

__all__ = ["ConfigError", "Settings", "load_settings"]


class ConfigError(Exception):
    """The configuration is invalid; the message names every bad key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(5000, ge=1, le=65535, description="TCP port to listen on.")
    public_url: str | None = Field(
        None,
        description="URL clients use to reach Portside (scheme://host[:port]), for token realms "
        "and Location headers behind a reverse proxy. Default: a Host listed in public_hosts, "
        "else the address the request arrived on.",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate chain; enables HTTPS.")
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert.")
    shutdown_grace_seconds: float = Field(
        30, ge=0, description="On SIGTERM, how long in-flight requests may take to finish."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed "
        "(for audit client addresses and login limits). Empty: none.",
    )
    public_hosts: list[str] = Field(
        default_factory=list,
        description="Without public_url: the host or host:port values of Host (or of "
        "X-Forwarded-Host, with trusted_proxies) that may name Portside in token realms and "
        "URLs. A host without a port allows any. Others are ignored. Empty: none.",
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    format: Literal["json", "console"] = Field("json", description="json or console lines.")
    access_log: bool = Field(True, description="One structured line per request.")


class DatabaseSettings(_Section):
    url: str | None = Field(
        None,
        description="SQLAlchemy URL: sqlite:////abs/path.db or "
        "postgresql+asyncpg://user@host/db. Default: SQLite in data_dir.",
    )
    pool_size: int = Field(10, ge=1, description="Connections per process (PostgreSQL).")


class FilesystemStorageSettings(_Section):
    root: Path | None = Field(None, description="Directory for blobs. Default: data_dir/storage.")


class S3StorageSettings(_Section):
    bucket: str = Field("", description="Bucket name (must exist).")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint URL.")
    region: str = Field("us-east-1", description="Region name.")
    access_key: str | None = Field(None, description="Access key id.")
    secret_key: SecretStr | None = Field(None, description="Secret access key.")
    prefix: str = Field("", description="Key prefix inside the bucket.")


class StorageSettings(_Section):
    driver: Literal["filesystem", "s3", "memory"] = Field(
        "filesystem", description="Blob storage driver."
    )
    filesystem: FilesystemStorageSettings = FilesystemStorageSettings()
    s3: S3StorageSettings = S3StorageSettings()
    min_free_bytes: int = Field(
        512 << 20,
        ge=0,
        description="Health reports storage (and an SQLite database) unhealthy when its local "
        "folder has less free space than this; 0 turns the check off.",
    )

    @model_validator(mode="after")
    def _s3_bucket(self) -> StorageSettings:
        if self.driver == "s3" and not self.s3.bucket:
            raise ValueError("storage.s3.bucket is required when storage.driver is s3")
        return self


class AuthSettings(_Section):
    token_ttl_seconds: int = Field(1800, ge=30, le=86400, description="Bearer token lifetime.")
    token_issuer: str = Field("portside-token-service", description="JWT iss claim.")
    token_service: str = Field("portside", description="Service name in challenges and aud.")
    realm: str = Field("Portside", description="Realm for HTTP basic challenges.")
    robot_prefix: str = Field(
        "robot$",
        min_length=1,
        max_length=32,
        description="Prefix of every robot account name, as in Harbor.",
    )
    project_creation_restriction: Literal["adminonly", "everyone"] = Field(
        "adminonly", description="Who may create projects: adminonly or everyone."
    )
    self_registration: bool = Field(
        False, description="Whether anyone may create their own user account."
    )
    login_failures_per_account: str = Field(
        "10 per 5 minutes",
        description="Failed logins allowed per account before further attempts are refused.",
    )
    login_failures_per_address: str = Field(
        "30 per 5 minutes",
        description="Failed logins allowed per client address before it is refused.",
    )
    login_limit_storage: str = Field(
        "memory://",
        description="Where failed-login counters live: memory:// (one process) or "
        "redis://host:port/db (shared by replicas).",
    )
    login_limit_key_prefix: str = Field(
        "portside", description="Key prefix for the failed-login counters in Redis."
    )
    login_limit_exempt_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks (CIDRs such as 10.0.0.0/8) whose logins the failed-login limits "
        "never count or refuse. Empty: none.",
    )

    @model_validator(mode="after")
    def _check_limits(self) -> AuthSettings:
        for key in ("login_failures_per_account", "login_failures_per_address"):
            try:
                parse_limit(getattr(self, key))
            except ValueError:
                raise ValueError(f"{key}: not a rate such as '10 per 5 minutes'") from None
        if not self.login_limit_storage.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("login_limit_storage: must be memory:// or redis://...")
        return self


class QuotaSettings(_Section):
    default_project_bytes: int = Field(
        -1, ge=-1, description="Storage quota of new projects in bytes; -1 is unlimited."
    )


class AuditSettings(_Section):
    retention_days: int = Field(
        90, ge=0, description="Audit entries older than this are purged; 0 keeps them forever."
    )
    purge_interval_seconds: int = Field(
        3600, ge=1, description="How often old audit entries are looked for."
    )
    syslog_address: str | None = Field(
        None,
        description="Also forward every entry to syslog: host:port (UDP) or a socket path "
        "such as /dev/log.",
    )

    @model_validator(mode="after")
    def _check_syslog(self) -> AuditSettings:
        if self.syslog_address is not None:
            try:
                parse_syslog_address(self.syslog_address)
            except ValueError as exc:
                raise ValueError(f"syslog_address: {exc}") from None
        return self


class RegistrySettings(_Section):
    max_manifest_bytes: int = Field(4 << 20, ge=1024, description="Largest accepted manifest.")
    upload_purge_age_seconds: int = Field(
        86400, ge=1, description="Uploads untouched for this long are deleted."
    )
    upload_purge_interval_seconds: int = Field(
        3600, ge=1, description="How often abandoned uploads are looked for."
    )
    catalog_max_entries: int = Field(1000, ge=1, description="Largest n for _catalog and tags.")
    cache_ttl_seconds: float = Field(
        10,
        ge=0,
        description="How long a replica may serve cached tag, manifest and blob lookups and "
        "access decisions without seeing another replica's change. Local changes are seen at "
        "once.",
    )


class ScannerSettings(_Section):
    workers: int = Field(
        2, ge=0, le=64, description="Scan jobs run at once on this replica; 0 runs none here."
    )
    block_unscanned: bool = Field(
        True,
        description="Where a project prevents vulnerable images from being pulled, also refuse "
        "images that have no successful scan yet (as Harbor does).",
    )
    layer_cache_entries: int = Field(
        512, ge=0, description="Layer analyses kept in memory (they are also in the database)."
    )


class ScrubSettings(_Section):
    interval_hours: float = Field(
        0,
        ge=0,
        description="Re-hash every stored blob this often, in the background at low priority "
        "(as portside fsck --verify-digests does). 0: never (the default).",
    )
    workers: int = Field(1, ge=1, le=64, description="Blobs the background scrub hashes at once.")
    repair: bool = Field(
        False,
        description="Quarantine each blob the background scrub finds with wrong bytes (as "
        "fsck --repair does) instead of only logging it.",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PORTSIDE_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Field(Path("portside-data"), description="Where SQLite and blobs live.")
    admin_password: SecretStr | None = Field(
        None, description="Password of the first admin (PORTSIDE_ADMIN_PASSWORD)."
    )
    server: ServerSettings = ServerSettings()
    log: LogSettings = LogSettings()
    database: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = StorageSettings()
    auth: AuthSettings = AuthSettings()
    registry: RegistrySettings = RegistrySettings()
    quota: QuotaSettings = QuotaSettings()
    audit: AuditSettings = AuditSettings()
    scanner: ScannerSettings = ScannerSettings()
    scrub: ScrubSettings = ScrubSettings()

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.data_dir / 'portside.db').resolve()}"

    @property
    def storage_root(self) -> Path:
        return self.storage.filesystem.root or self.data_dir / "storage"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment overrides the file; the file comes in through init_settings.
        return (env_settings, init_settings)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from ``path`` (optional), the environment and ``overrides``.

    Raises :class:`ConfigError` whose message names each invalid key.
    """
    data = _read_yaml(path) if path else {}
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "(top level)"
            problems.append(f"{key}: {error['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
