"""``portside scan``, ``scan-all`` and ``cve-allowlist``: vulnerability scans of artifacts, of
the whole registry, and the CVEs the pull gate ignores."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from portside.cli.commands._common import pass_api, split_reference
from portside.cli.commands.content import artifact_path
from portside.cli.output import emit_json, output_option, print_table, spinner

if TYPE_CHECKING:
    from portside.cli.client import Api

__all__ = ["cve_allowlist", "sbom", "scan", "scan_all"]

REPORT_MIME = "application/vnd.security.vulnerability.report; version=1.1"
SEVERITIES = ("Critical", "High", "Medium", "Low", "Negligible", "Unknown")
FINDING_COLUMNS = [
    ("ID", lambda v: v.get("id")),
    ("SEVERITY", lambda v: v.get("severity")),
    ("PACKAGE", lambda v: v.get("package")),
    ("VERSION", lambda v: v.get("version")),
    ("FIXED IN", lambda v: v.get("fix_version") or None),
]


def _overview(api: Api, path: str) -> dict[str, Any]:
    found = api.get(path, {"with_scan_overview": "true"})
    return dict((found.get("scan_overview") or {}).get(REPORT_MIME) or {})


def _report(api: Api, path: str) -> dict[str, Any]:
    return dict(api.get(f"{path}/additions/vulnerabilities").get(REPORT_MIME) or {})


def _by_severity(vulnerabilities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {name: i for i, name in enumerate(SEVERITIES)}
    return sorted(
        vulnerabilities,
        key=lambda v: (rank.get(v.get("severity", ""), len(rank)), str(v.get("id"))),
    )


@click.command()
@click.argument("reference", metavar="ARTIFACT")
@click.option("--sbom", is_flag=True, help="Generate an SBOM instead of a vulnerability scan.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the result.")
@click.option(
    "--timeout", type=click.IntRange(min=1), default=600, show_default=True, help="Seconds."
)
@click.option("--stop", is_flag=True, help="Stop a queued or running scan instead.")
@click.option("--report", "report_only", is_flag=True, help="Show the last report; no scan.")
@output_option
@pass_api
def scan(
    api: Api,
    reference: str,
    sbom: bool,
    wait: bool,
    timeout: int,
    stop: bool,
    report_only: bool,
    output: str,
) -> None:
    """Scan ARTIFACT (PROJECT/REPOSITORY:TAG or @DIGEST) for vulnerabilities and list what
    was found. Exit status 0 when the scan finished, 1 when it failed or was incomplete (the
    vulnerability database had no advisories for some of the image's packages: what was
    found is listed, and what was not checked is named).

    Example: portside scan library/nginx:1.25
    """
    project_name, name, ref = split_reference(reference)
    path = artifact_path(project_name, name, ref)
    body = {"scan_type": "sbom" if sbom else "vulnerability"}
    if stop:
        api.post(f"{path}/scan/stop", json=body)
        click.echo(f"stopped the scan of {reference}")
        return
    overview: dict[str, Any] = {}  # how the scan just run ended (none with --report)
    if not report_only:
        api.post(f"{path}/scan", json=body)
        if sbom or not wait:
            click.echo(f"queued a {'SBOM' if sbom else 'vulnerability'} scan of {reference}")
            return
        deadline = time.monotonic() + timeout
        with spinner(f"scanning {reference}"):
            while True:
                overview = _overview(api, path)
                if overview.get("scan_status") in ("Success", "Error", "Stopped"):
                    break
                if time.monotonic() > deadline:
                    raise click.ClickException(f"the scan did not finish in {timeout} s")
                time.sleep(1)
    report = _report(api, path)
    coverage = dict(report.get("coverage") or {})
    incomplete = coverage.get("complete") is False  # reports of external scanners have none
    if overview and overview.get("scan_status") != "Success" and not incomplete:
        reason = overview.get("message")
        raise click.ClickException(
            f"the scan ended {overview.get('scan_status')}" + (f": {reason}" if reason else "")
        )
    if not report:
        raise click.ClickException(f"{reference} has no vulnerability report yet")
    vulnerabilities = _by_severity(list(report.get("vulnerabilities") or []))
    if output == "json":
        emit_json(report)
    else:
        click.echo(_headline(vulnerabilities, coverage))
        print_table(vulnerabilities, FINDING_COLUMNS, "")
    if incomplete:
        raise click.ClickException(str(coverage.get("message") or "the scan was incomplete"))


def _headline(vulnerabilities: list[dict[str, Any]], coverage: dict[str, Any]) -> str:
    """How many findings of each severity. Never an all-clear for a scan that could not check
    every package (the reason follows on stderr)."""
    counts = {s: 0 for s in SEVERITIES}
    for item in vulnerabilities:
        counts[item.get("severity", "Unknown")] = counts.get(item.get("severity", "Unknown"), 0) + 1
    found = ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n)
    listed = f"{len(vulnerabilities)} vulnerabilities: {found}"
    if coverage.get("complete") is not False:  # external scanners' reports say nothing of it
        return listed if vulnerabilities else "no known vulnerabilities"
    if coverage.get("database_empty"):
        return "INCOMPLETE scan: no package could be checked"
    if vulnerabilities:
        return f"INCOMPLETE scan: {listed}"
    return "INCOMPLETE scan: no vulnerabilities in the packages that could be checked"


@click.command("scan-all")
@click.option(
    "--schedule",
    metavar="WHEN",
    help="Instead of scanning now, scan on a schedule: hourly, daily, weekly, none, or a "
    "six-field cron with seconds first, e.g. '0 0 2 * * *'.",
)
@click.option("--status", is_flag=True, help="Show the progress of scan-all and its schedule.")
@click.option("--stop", is_flag=True, help="Stop the scans scan-all queued.")
@output_option
@pass_api
def scan_all(api: Api, schedule: str | None, status: bool, stop: bool, output: str) -> None:
    """Scan every image in the registry (system admins).

    Example: portside scan-all --schedule daily
    """
    if stop:
        api.post("/system/scanAll/stop")
        click.echo("stopped scan-all")
        return
    if status:
        found = {
            "metrics": api.get("/scans/all/metrics"),
            "schedule": api.get("/system/scanAll/schedule").get("schedule"),
        }
        if output == "json":
            emit_json(found)
            return
        metrics = found["metrics"]
        plan = found["schedule"] or {}
        click.echo(f"schedule: {plan.get('type', 'None')} {plan.get('cron') or ''}".rstrip())
        click.echo(
            f"scans: {metrics.get('completed', 0)} of {metrics.get('total', 0)} done"
            + (" (running)" if metrics.get("ongoing") else "")
        )
        for state, count in sorted((metrics.get("metrics") or {}).items()):
            click.echo(f"  {state}: {count}")
        return
    if schedule is None:
        api.post("/system/scanAll/schedule", json={"schedule": {"type": "Manual"}})
        click.echo("queued a scan of every image")
        return
    kinds = {"hourly": "Hourly", "daily": "Daily", "weekly": "Weekly", "none": "None"}
    kind = kinds.get(schedule.lower(), "Custom")
    body = {"schedule": {"type": kind, "cron": schedule if kind == "Custom" else ""}}
    api.put("/system/scanAll/schedule", json=body)
    click.echo(f"scan-all schedule is now {kind}" + (f" ({schedule})" if kind == "Custom" else ""))


@click.group("cve-allowlist")
def cve_allowlist() -> None:
    """The system CVE allowlist: CVEs that never block a pull."""


@cve_allowlist.command("show")
@output_option
@pass_api
def allowlist_show(api: Api, output: str) -> None:
    """Show the system CVE allowlist."""
    found = api.get("/system/CVEAllowlist")
    if output == "json":
        emit_json(found)
        return
    expires = found.get("expires_at")
    click.echo(
        "expires: "
        + (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires)) if expires else "never")
    )
    print_table(found.get("items") or [], [("CVE", lambda i: i.get("cve_id"))], "no CVEs")


@cve_allowlist.command("set")
@click.argument("cves", nargs=-1, metavar="CVE...")
@click.option(
    "--expires-in-days",
    type=click.IntRange(min=1, max=36500),
    help="The list stops applying after this many days (default: never).",
)
@pass_api
def allowlist_set(api: Api, cves: tuple[str, ...], expires_in_days: int | None) -> None:
    """Replace the system CVE allowlist with CVE... (none: empty it; system admins).

    Example: portside cve-allowlist set CVE-2023-4911 CVE-2024-2961 --expires-in-days 30
    """
    expires = int(time.time()) + expires_in_days * 86400 if expires_in_days else None
    api.put(
        "/system/CVEAllowlist",
        json={"items": [{"cve_id": cve} for cve in cves], "expires_at": expires},
    )
    click.echo(f"the system CVE allowlist now has {len(cves)} CVEs")


@click.group()
def sbom() -> None:
    """Software bills of materials of images."""


@sbom.command("get")
@click.argument("reference", metavar="ARTIFACT")
@click.option(
    "--format",
    "sbom_format",
    type=click.Choice(["spdx", "cyclonedx"]),
    default="spdx",
    show_default=True,
    help="SPDX 2.3 JSON or CycloneDX 1.5 JSON.",
)
@click.option(
    "--file",
    "-f",
    "target",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the SBOM to this file instead of standard output.",
)
@pass_api
def sbom_get(api: Api, reference: str, sbom_format: str, target: str | None) -> None:
    """Print the SBOM of ARTIFACT (PROJECT/REPOSITORY:TAG or @DIGEST).

    Example: portside sbom get library/nginx:1.25 --format cyclonedx -f nginx.cdx.json
    """
    project_name, name, ref = split_reference(reference)
    response = api.request(
        "GET", f"{artifact_path(project_name, name, ref)}/sbom", params={"format": sbom_format}
    )
    if target is None:
        click.echo(response.text)
        return
    with open(target, "w", encoding="utf-8") as out:
        out.write(response.text)
    click.echo(f"wrote the {sbom_format} SBOM of {reference} to {target}", err=True)
