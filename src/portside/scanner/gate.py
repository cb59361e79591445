"""The pull gate: in a project with ``prevent_vul`` set, a manifest whose findings reach the
project's ``severity`` is not served, nor (with ``scanner.block_unscanned``, as in Harbor) one
that has no successful scan yet. A scan the advisories did not cover (an empty database, or none
for an ecosystem the image needs) is not a successful one: its findings count, but finding
nothing there proves nothing. CVEs on the project's effective allowlist do not count.

The common case costs nothing: a project without ``prevent_vul`` is decided from its cached
metadata. Otherwise the verdict per (project, digest) is cached for ``cache_ttl`` seconds; a scan
that ends in this process (an event on the bus) or an allowlist change made here clears the cache
at once. Other replicas see such changes when their cached verdicts expire.
Artifacts the scanner cannot scan (charts, signatures, SBOMs …) are never blocked, so signing
and attaching SBOMs keep working.
"""

from __future__ import annotations

from dataclasses import dataclass

from portside.events import SCANNING_COMPLETED, SCANNING_FAILED, SCANNING_STOPPED, Event
from portside.oci import mediatypes as mt
from portside.projects.projects import Project
from portside.registry.cache import LRUCache
from portside.scanner.allowlists import Allowlists
from portside.scanner.engine import UnsupportedArtifact, layers_of
from portside.scanner.model import Severity
from portside.scanner.reports import INCOMPLETE, VULNERABILITY_REPORT, ScanReports

__all__ = ["PullGate", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""


_ALLOWED = Verdict(True)


class PullGate:
    def __init__(
        self,
        reports: ScanReports,
        allowlists: Allowlists,
        *,
        block_unscanned: bool,
        cache_ttl: float,
    ) -> None:
        self._reports = reports
        self._allowlists = allowlists
        self._block_unscanned = block_unscanned
        self._verdicts: LRUCache[tuple[int, str], Verdict] = LRUCache(50_000, cache_ttl)
        self._generation = 0  # counts forget() calls; see check()

    def forget(self) -> None:
        """After a scan finished or an allowlist changed here: decide again at once."""
        self._generation += 1
        self._verdicts.clear()

    async def on_event(self, event: Event) -> None:
        """An event bus subscriber. It is subscribed before anything else (webhooks), so
        whoever reacts to a finished scan by pulling the image meets the new verdict."""
        if event.type in (SCANNING_COMPLETED, SCANNING_FAILED, SCANNING_STOPPED):
            self.forget()

    async def check(self, project: Project, digest: str, media_type: str, body: bytes) -> Verdict:
        if project.metadata.get("prevent_vul") != "true":
            return _ALLOWED
        key = (project.id, digest)
        cached = self._verdicts.get(key)
        if cached is not None:
            return cached
        generation = self._generation
        verdict = await self._decide(project, digest, media_type, body)
        # A scan that ended while this verdict was being decided may have made it stale
        # already: answer with it, but do not keep it.
        if generation == self._generation:
            self._verdicts.put(key, verdict)
        return verdict

    async def _decide(self, project: Project, digest: str, media_type: str, body: bytes) -> Verdict:
        if media_type not in mt.INDEXES:
            try:
                layers_of(body)
            except UnsupportedArtifact:
                return _ALLOWED  # nothing a scanner could judge
        threshold = project.metadata.get("severity", "low").capitalize()
        policy = (
            f"the project's policy prevents pulling images with vulnerabilities of severity "
            f"{threshold} or higher"
        )
        job = (await self._reports.jobs([digest], VULNERABILITY_REPORT)).get(digest)
        summary = job.summary if job is not None else None
        blocking: list[str] = []
        if summary is not None:
            allowed = await self._allowlists.effective(project)
            rank = Severity.rank(threshold)
            blocking = sorted(
                cve
                for cve, severity in dict(summary.get("cves", {})).items()
                if cve not in allowed and Severity.rank(str(severity)) >= rank
            )
        if not blocking and (summary is None or summary.get(INCOMPLETE)):
            # Never scanned successfully, or scanned without the advisories the image needs
            # (what it found is judged above, but finding nothing proves nothing).
            if not self._block_unscanned:
                return _ALLOWED
            why = f" ({job.message})" if job is not None and summary and job.message else ""
            return Verdict(
                False, f"this image has not been scanned successfully{why}, and {policy}"
            )
        if not blocking:
            return _ALLOWED
        shown = ", ".join(blocking[:5]) + (" …" if len(blocking) > 5 else "")
        return Verdict(
            False,
            f"this image has {len(blocking)} vulnerabilities ({shown}) at or above severity "
            f"{threshold}, and {policy}; a project admin may allowlist CVEs to allow the pull",
        )
