"""Everything a request handler may call, built once per application by :func:`build_services`.

Handlers reach services through ``request.app.state.services``; nothing is a module global.
"""

from __future__ import annotations

from dataclasses import dataclass

from portside.audit.log import AuditLog
from portside.auth.accounts import Accounts
from portside.auth.groups import UserGroups
from portside.auth.policy import ProjectPolicy
from portside.auth.ratelimit import LoginLimiter, Unlocks
from portside.auth.robots import Robots
from portside.auth.sessions import Sessions
from portside.auth.tokens import TokenService
from portside.config import Settings
from portside.db.engine import Database
from portside.events import EventBus
from portside.projects.labels import Labels
from portside.projects.members import Members
from portside.projects.projects import Projects
from portside.projects.quotas import ProjectQuotas
from portside.registry.artifacts import ArtifactContent
from portside.registry.blobs import Blobs
from portside.registry.charts import ChartAdditions
from portside.registry.manifests import Manifests
from portside.registry.pulls import PullRecorder
from portside.registry.repositories import Repositories
from portside.registry.uploads import Uploads
from portside.scanner.allowlists import Allowlists
from portside.scanner.cve_export import CveExports
from portside.scanner.gate import PullGate
from portside.scanner.service import Scans
from portside.scanner.vulndb import VulnDB
from portside.storage.base import StorageDriver
from portside.storage.factory import create_driver
from portside.system.configurations import Configurations
from portside.system.health import HealthChecks, local_folders

__all__ = ["Services", "build_services"]


@dataclass
class Services:
    settings: Settings
    db: Database
    storage: StorageDriver
    repositories: Repositories
    blobs: Blobs
    uploads: Uploads
    manifests: Manifests
    charts: ChartAdditions
    pulls: PullRecorder
    artifacts: ArtifactContent
    accounts: Accounts
    groups: UserGroups
    robots: Robots
    tokens: TokenService
    projects: Projects
    quotas: ProjectQuotas
    members: Members
    policy: ProjectPolicy
    login_limiter: LoginLimiter
    audit: AuditLog
    labels: Labels
    sessions: Sessions
    configurations: Configurations
    health: HealthChecks
    scans: Scans
    events: EventBus
    allowlists: Allowlists
    pull_gate: PullGate
    cve_exports: CveExports

    async def close(self) -> None:
        await self.cve_exports.close()
        await self.scans.close()
        await self.pulls.close()
        await self.audit.close()
        await self.health.close()
        await self.uploads.close()
        await self.storage.close()
        await self.db.close()


def build_services(settings: Settings) -> Services:
    db = Database(settings.database_url, settings.database.pool_size)
    storage = create_driver(settings)
    ttl = settings.registry.cache_ttl_seconds
    repositories = Repositories(db, ttl)
    projects = Projects(db, ttl)
    quotas = ProjectQuotas(db, projects, ttl)
    blobs = Blobs(db, storage, repositories, ttl, quotas=quotas)
    members = Members(db)
    robots = Robots(db, settings.auth.robot_prefix, ttl)
    auth = settings.auth
    pulls = PullRecorder(db)
    manifests = Manifests(
        db,
        storage,
        repositories,
        settings.registry.max_manifest_bytes,
        ttl,
        quotas=quotas,
        pulls=pulls,
    )
    configurations = Configurations(db, settings, ttl)
    tokens = TokenService(
        db,
        auth.token_issuer,
        auth.token_service,
        auth.token_ttl_seconds,
        lifetime=lambda: configurations.current.token_lifetime_seconds,
    )
    events = EventBus()
    scans = Scans(settings, db, storage, manifests, projects, VulnDB(db), tokens, blobs, events)
    allowlists = Allowlists(db, ttl)
    pull_gate = PullGate(
        scans.reports,
        allowlists,
        block_unscanned=settings.scanner.block_unscanned,
        cache_ttl=ttl,
    )
    events.subscribe(pull_gate.on_event)
    shared_limits = auth.login_limit_storage.startswith(("redis://", "rediss://"))
    return Services(
        settings=settings,
        db=db,
        storage=storage,
        repositories=repositories,
        blobs=blobs,
        uploads=Uploads(db, storage, blobs, settings.registry.upload_purge_age_seconds),
        manifests=manifests,
        pulls=pulls,
        artifacts=ArtifactContent(manifests, storage),
        charts=ChartAdditions(manifests, blobs),
        accounts=Accounts(db, ttl),
        groups=UserGroups(db),
        robots=robots,
        tokens=tokens,
        projects=projects,
        quotas=quotas,
        members=members,
        policy=ProjectPolicy(projects, members, robots, ttl),
        login_limiter=LoginLimiter(
            auth.login_failures_per_account,
            auth.login_failures_per_address,
            auth.login_limit_storage,
            auth.login_limit_key_prefix,
            auth.login_limit_exempt_networks,
            Unlocks(db),
        ),
        audit=AuditLog(db),
        labels=Labels(db),
        sessions=Sessions(db),
        configurations=configurations,
        health=HealthChecks(
            db,
            storage,
            auth.login_limit_storage if shared_limits else None,
            folders=local_folders(settings),
            min_free_bytes=settings.storage.min_free_bytes,
        ),
        scans=scans,
        events=events,
        allowlists=allowlists,
        pull_gate=pull_gate,
        cve_exports=CveExports(db, storage, scans.registrations),
    )
