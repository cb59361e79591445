"""Run real registry clients (skopeo, podman, buildah, docker) with isolated configuration.

Every tool runs inside a :class:`ClientEnv`: a private directory holding its own HOME, XDG dirs,
containers storage (vfs), containers.conf, registries.conf, signature policy, auth file and
DOCKER_CONFIG.  Nothing under /etc/containers, ~/.docker or ~/.config is read or written, so tests
never depend on (or change) the machine's client configuration, and concurrent tests do not share
credentials or image stores.

As root, containers/image also keeps a blob-location cache in /var/lib/containers/cache whatever
the configuration says.  When possible each tool therefore runs in a private mount namespace with
``<env>/varlib`` bound over /var/lib/containers, so that cache is per-test as well (otherwise a
cache left by an earlier run would make clients attempt cross-repository mounts from repositories
that no longer exist).

Targets are plain-HTTP registries on 127.0.0.1, so every call disables TLS verification.  Every
call has a timeout; a failure or timeout raises :class:`ToolError` carrying the tool's stderr.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_TIMEOUT = 180.0
# The bound mount point; created empty if missing (the tools would create it themselves anyway).
SYSTEM_CACHE_PARENT = "/var/lib/containers"
# Run "$@" with $0 bound over SYSTEM_CACHE_PARENT; exec keeps the tool's PID for timeouts.
_BIND_SCRIPT = (
    f'mkdir -p {SYSTEM_CACHE_PARENT} && mount --bind "$0" {SYSTEM_CACHE_PARENT} && exec "$@"'
)
_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ToolError(RuntimeError):
    """A client command failed or timed out; the message includes argv, exit code and stderr."""

    def __init__(
        self, argv: Sequence[str], returncode: int | None, stdout: bytes, stderr: str
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode  # None: killed after the timeout
        self.stdout = stdout
        self.stderr = stderr
        status = "timed out" if returncode is None else f"exited {returncode}"
        tail = stdout.decode(errors="replace")[-2000:]
        super().__init__(
            f"{' '.join(self.argv)} {status}\n--- stderr ---\n{stderr[-8000:]}"
            + (f"\n--- stdout (tail) ---\n{tail}" if tail.strip() else "")
        )


@dataclass(frozen=True)
class Result:
    """Outcome of one command: raw stdout bytes (manifests must be hashed exactly) and stderr."""

    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode()


@functools.cache
def _private_mount_supported() -> bool:
    """True if we are root and ``unshare --mount`` works here (needs CAP_SYS_ADMIN)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return probe.returncode == 0


@dataclass(frozen=True)
class ClientEnv:
    """An isolated client configuration rooted at ``root``; build it with :meth:`create`."""

    root: Path
    env: Mapping[str, str]

    @property
    def auth_file(self) -> Path:
        """containers-auth.json shared by skopeo, podman and buildah in this environment."""
        return self.root / "auth.json"

    @property
    def docker_config(self) -> Path:
        """DOCKER_CONFIG directory (docker CLI writes config.json here)."""
        return self.root / "docker"

    @classmethod
    def create(cls, root: Path) -> ClientEnv:
        """Create ``root`` and write all configuration for podman/buildah/skopeo as root.

        Storage is vfs (no overlay or fuse needed, works in nested sandboxes), cgroups are managed
        by cgroupfs (there is no systemd here), events go to a file (no journald), and buildah uses
        chroot isolation.  No registry is configured: callers always use fully qualified names.
        """
        root = root.resolve()
        home = root / "home"
        conf_dir = home / ".config" / "containers"
        run_dir = root / "run"
        for directory in (conf_dir, home / ".local" / "share", home / ".cache", root / "tmp"):
            directory.mkdir(parents=True, exist_ok=True)
        for directory in (root / "storage", root / "docker", root / "varlib", run_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
        _write_containers_config(conf_dir, root)
        (root / "auth.json").write_text('{"auths": {}}\n')  # podman insists it exists
        env = {
            "PATH": os.environ.get("PATH", _BASE_PATH),
            "LANG": "C.UTF-8",
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_RUNTIME_DIR": str(run_dir),
            "TMPDIR": str(root / "tmp"),
            "CONTAINERS_CONF": str(conf_dir / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(conf_dir / "storage.conf"),
            "REGISTRIES_CONFIG_PATH": str(conf_dir / "registries.conf"),
            "REGISTRY_AUTH_FILE": str(root / "auth.json"),
            "DOCKER_CONFIG": str(root / "docker"),
            "BUILDAH_ISOLATION": "chroot",
        }
        return cls(root=root, env=env)

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
    ) -> Result:
        """Run ``argv`` in this environment; raise :class:`ToolError` on timeout or, if
        ``check``, on a non-zero exit.  The whole process group is killed on timeout."""
        full = list(argv)
        if _private_mount_supported():
            full = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _BIND_SCRIPT]
            full += [str(self.root / "varlib"), *argv]
        proc = subprocess.Popen(
            full,
            env=dict(self.env),
            cwd=self.root,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # own process group, so a timeout kills helpers too
        )
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # it may have just exited
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise ToolError(argv, None, out, err.decode(errors="replace")) from None
        result = Result(list(argv), proc.returncode, out, err.decode(errors="replace"))
        if check and proc.returncode != 0:
            raise ToolError(argv, proc.returncode, out, result.stderr)
        return result


def _write_containers_config(conf_dir: Path, root: Path) -> None:
    """storage.conf, containers.conf, registries.conf and policy.json for one environment."""
    (conf_dir / "storage.conf").write_text(
        f"""\
[storage]
driver = "vfs"
graphroot = "{root / "storage"}"
runroot = "{root / "run" / "storage"}"
"""
    )
    (conf_dir / "containers.conf").write_text(
        f"""\
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{root / "run" / "events.log"}"
tmp_dir = "{root / "run" / "libpod"}"
volume_path = "{root / "storage" / "volumes"}"
image_copy_tmp_dir = "{root / "tmp"}"

[network]
network_config_dir = "{root / "networks"}"
"""
    )
    # No search registries: a short name must never silently resolve to some other registry.
    (conf_dir / "registries.conf").write_text(
        'unqualified-search-registries = []\nshort-name-mode = "enforcing"\n'
    )
    # Read from $HOME/.config/containers/policy.json before /etc/containers/policy.json.
    policy = {"default": [{"type": "insecureAcceptAnything"}]}
    (conf_dir / "policy.json").write_text(json.dumps(policy) + "\n")


def _is_remote(ref: str) -> bool:
    return ref.startswith("docker://")


def _read_digest(path: Path) -> str:
    """The ``sha256:...`` digest a tool wrote with --digestfile."""
    digest = path.read_text().strip()
    if not digest.startswith("sha256:"):
        raise AssertionError(f"unexpected digest file content {digest!r}")
    return digest


class Skopeo:
    """skopeo in a :class:`ClientEnv`; references carry their transport (docker://, oci:, dir:)."""

    def __init__(self, env: ClientEnv) -> None:
        self.env = env

    def login(self, host: str, username: str, password: str) -> Result:
        """Store credentials for ``host`` in the environment's auth file (checks them first)."""
        argv = ["skopeo", "login", "--tls-verify=false", "-u", username, "--password-stdin", host]
        return self.env.run(argv, stdin=password.encode())

    def copy(self, src: str, dst: str, *flags: str, timeout: float = DEFAULT_TIMEOUT) -> Result:
        """``skopeo copy [flags] src dst`` with TLS verification off for docker:// sides."""
        argv = ["skopeo", "copy", *flags]
        if _is_remote(src):
            argv.append("--src-tls-verify=false")
        if _is_remote(dst):
            argv.append("--dest-tls-verify=false")
        return self.env.run([*argv, src, dst], timeout=timeout)

    def inspect_raw(self, ref: str, *flags: str) -> bytes:
        """The manifest (or index) exactly as the registry served it."""
        return self.env.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", *flags, ref]
        ).stdout

    def inspect(self, ref: str, *flags: str) -> dict[str, Any]:
        """``skopeo inspect`` JSON (Digest, Layers, Architecture, ...)."""
        result = self.env.run(["skopeo", "inspect", "--tls-verify=false", *flags, ref])
        parsed: dict[str, Any] = json.loads(result.stdout)
        return parsed

    def list_tags(self, ref: str) -> list[str]:
        """Tags of repository ``ref`` (``docker://host/name``), as listed by the registry."""
        result = self.env.run(["skopeo", "list-tags", "--tls-verify=false", ref])
        tags: list[str] = json.loads(result.stdout)["Tags"]
        return tags

    def delete(self, ref: str) -> Result:
        """Delete the manifest ``ref`` points to (by tag: the manifest that tag resolves to)."""
        return self.env.run(["skopeo", "delete", "--tls-verify=false", ref])


class Podman:
    """podman (root, vfs storage) in a :class:`ClientEnv`; refs are ``host/name:tag``."""

    def __init__(self, env: ClientEnv) -> None:
        self.env = env

    def login(self, host: str, username: str, password: str) -> Result:
        argv = ["podman", "login", "--tls-verify=false", "-u", username, "--password-stdin", host]
        return self.env.run(argv, stdin=password.encode())

    def logout(self, host: str) -> Result:
        return self.env.run(["podman", "logout", host])

    def pull(self, ref: str) -> str:
        """Pull ``ref`` into local storage; returns the local image ID."""
        result = self.env.run(["podman", "pull", "--quiet", "--tls-verify=false", ref])
        return result.text.strip().splitlines()[-1]

    def tag(self, src: str, dst: str) -> Result:
        return self.env.run(["podman", "tag", src, dst])

    def push(self, src: str, dst: str | None = None, *flags: str) -> str:
        """Push local image ``src`` (to ``dst`` if given); returns the pushed manifest digest."""
        digest_file = self.env.root / "tmp" / "podman-push.digest"
        argv = ["podman", "push", "--tls-verify=false", "--digestfile", str(digest_file), *flags]
        self.env.run([*argv, src, *([dst] if dst else [])])
        return _read_digest(digest_file)

    def image_ids(self) -> list[str]:
        """Full IDs of all images in local storage."""
        result = self.env.run(["podman", "images", "--quiet", "--no-trunc"])
        return [line.removeprefix("sha256:") for line in result.text.split()]

    def remove_all_images(self) -> Result:
        return self.env.run(["podman", "rmi", "--all", "--force"])


class Buildah:
    """buildah (chroot isolation, vfs storage) in a :class:`ClientEnv`."""

    def __init__(self, env: ClientEnv) -> None:
        self.env = env

    def login(self, host: str, username: str, password: str) -> Result:
        argv = ["buildah", "login", "--tls-verify=false", "-u", username, "--password-stdin", host]
        return self.env.run(argv, stdin=password.encode())

    def build(self, context: Path, tag: str, *flags: str) -> str:
        """Build ``context``/Containerfile as ``tag``; returns the image ID."""
        iid_file = self.env.root / "tmp" / "buildah-build.iid"
        argv = ["buildah", "build", "--isolation", "chroot", "--iidfile", str(iid_file), *flags]
        self.env.run([*argv, "-t", tag, "-f", str(context / "Containerfile"), str(context)])
        return iid_file.read_text().strip().removeprefix("sha256:")

    def push(self, ref: str, *flags: str) -> str:
        """Push local image ``ref`` to ``docker://ref``; returns the pushed manifest digest."""
        digest_file = self.env.root / "tmp" / "buildah-push.digest"
        argv = ["buildah", "push", "--tls-verify=false", "--digestfile", str(digest_file), *flags]
        self.env.run([*argv, ref, f"docker://{ref}"])
        return _read_digest(digest_file)

    def build_from_scratch_and_push(self, files: Mapping[str, bytes], ref: str) -> str:
        """Build ``FROM scratch`` + one ``COPY`` per file (name -> content, placed at /name),
        push it to ``ref`` (``host/name:tag``) and return the pushed manifest digest."""
        context = self.env.root / "build-context"
        context.mkdir(exist_ok=True)
        lines = ["FROM scratch"]
        for name, content in files.items():
            (context / name).write_bytes(content)
            lines.append(f"COPY {name} /{name}")
        (context / "Containerfile").write_text("\n".join(lines) + "\n")
        self.build(context, ref)
        return self.push(ref)


def docker_login(
    env: ClientEnv, host: str, username: str, password: str, *, timeout: float = 60.0
) -> Result:
    """``docker login host -u username --password-stdin`` with DOCKER_CONFIG in ``env``.

    The CLI checks the credentials itself (no engine needed) and treats 127.0.0.0/8 as an
    insecure registry, falling back from HTTPS to plain HTTP.  Raises :class:`ToolError` when the
    login is refused.
    """
    argv = ["docker", "login", host, "-u", username, "--password-stdin"]
    return env.run(argv, stdin=password.encode(), timeout=timeout)


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split ``Bearer realm="..",service=".."`` into ("bearer", {"realm": .., ...})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def registry_get(
    base_url: str,
    path: str,
    username: str,
    password: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> httpx.Response:
    """GET ``base_url + path`` as ``username``, the way a simple client would.

    Sends Basic credentials up front; if the registry still answers 401 with a Bearer challenge,
    fetches a token from the challenge's realm (Basic-authenticated, same service and scope) and
    retries once with it.  Returns the final response whatever its status.
    """
    with httpx.Client(timeout=timeout) as client:
        response = client.get(base_url + path, headers=headers, auth=(username, password))
        scheme, params = _parse_challenge(response.headers.get("www-authenticate", ""))
        if response.status_code != 401 or scheme != "bearer" or "realm" not in params:
            return response
        query: dict[str, str] = {k: params[k] for k in ("service", "scope") if k in params}
        token_response = client.get(params["realm"], params=query, auth=(username, password))
        token_response.raise_for_status()
        body = token_response.json()
        token = body.get("token") or body["access_token"]
        retry_headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
        return client.get(base_url + path, headers=retry_headers)
