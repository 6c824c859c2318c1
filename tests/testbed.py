"""The imgtag test bed: a private Docker engine and four real registries on loopback.

This module does I/O and starts processes. ``start()`` creates one short temporary
directory and starts, all on 127.0.0.1 with ports chosen at run time:

- ``dockerd`` (Debian ``docker.io``) as root on a private unix socket, without iptables,
  bridge or IP forwarding, with its own data root, exec root and pid file;
- ``docker-registry`` (Debian's Distribution 2.8.2) four times: ``plain`` (HTTP, anonymous),
  ``basic`` (HTTP, htpasswd basic auth: Distribution accepts that without TLS), ``tls``
  (HTTPS with a certificate signed by a CA generated for this bed with ``openssl``) and
  ``token`` (HTTP, Docker token auth: ``auth: token:`` with a self-signed RSA certificate as
  ``rootcertbundle``);
- ``tests/tokenissuer.py``, the ``token`` registry's realm: a small token server in its own
  Python process that signs RS256 JWTs with that certificate's key for one test user.

It writes the CA to ``/etc/docker/certs.d/127.0.0.1:PORT/ca.crt`` for dockerd and removes it
again in ``stop()``. ``Testbed.stop()`` ends exactly the processes it started (by pid,
checking their command line first) and removes the directory.

Use it from pytest through the fixtures in ``tests/conftest.py``, or from a shell::

    eval "$(python tests/testbed.py up)"   # prints `export NAME=value` lines, leaves it running
    python tests/testbed.py down           # stops the bed that `up` started

Only the standard library is needed to start and stop the bed; the image helpers at the
bottom take a docker SDK client made by the caller.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import docker
    import docker.models.images
    import requests

#: Where beds are created. Unix socket paths are limited to ~108 bytes and containerd puts
#: deeper sockets under the exec root, so a short base beats a long $TMPDIR.
BASE_DIR = Path(os.environ.get("IMGTAG_TESTBED_BASE", "/tmp"))
#: `up` remembers its bed here so that `down` needs no argument.
CURRENT_POINTER = BASE_DIR / "imgtag-testbed.current"
CERTS_D = Path("/etc/docker/certs.d")
BUSYBOX = Path("/bin/busybox")
ENGINE_TIMEOUT_S = 60.0
REGISTRY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
#: The daemon and its helpers live in sbin; a non-login root shell may lack it in PATH.
_SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
#: The `Accept` header an existence check must send (see docs/registries.md).
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)

#: The token server of the ``token`` registry, run with this interpreter (stdlib only).
TOKEN_ISSUER_SCRIPT = Path(__file__).resolve().with_name("tokenissuer.py")
TOKEN_SERVICE = "imgtag-testbed-token"
TOKEN_ISSUER = "imgtag-testbed-issuer"
TOKEN_USER = "tokenuser"
#: RSA 2048 key generation takes 0.1-1.5 s (prime search): it runs while dockerd starts.
KEYGEN_TIMEOUT_S = 30.0

DEBIAN_PACKAGE_OF = {
    "dockerd": "docker.io",
    "docker-registry": "docker-registry",
    "htpasswd": "apache2-utils",
    "openssl": "openssl",
}


class TestbedError(RuntimeError):
    """A service of the bed could not be started; the message says which, why, and the log."""

    __test__ = False  # a name starting with "Test" is not a pytest test class here


@dataclass(frozen=True)
class Engine:
    """The bed's Docker engine. Pass ``host`` as ``DOCKER_HOST`` or ``base_url``."""

    host: str
    pid: int
    root: Path
    log_file: Path
    storage_driver: str


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="...",scope="..."`` to ``("bearer", {...})``.

    Quoted values may hold commas (``scope="repository:a:pull,push"``), so this is a small
    tokenizer rather than a split on ``,``.
    """
    scheme, _, rest = header.strip().partition(" ")
    params = {
        match.group(1).lower(): match.group(2) if match.group(2) is not None else match.group(3)
        for match in re.finditer(r'([A-Za-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))', rest)
    }
    return scheme.lower(), params


class BearerAuth:
    """``requests``' ``auth=`` for a token registry, the way registry clients do it: on a
    401 with a ``Bearer`` challenge it fetches a token from the realm with the basic
    credentials and the challenge's service and scope, and sends the request once more.

    No token is cached: every authorised request costs challenge + token + retry, which
    keeps what a test sees (and the issuer counts) predictable.
    """

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def __repr__(self) -> str:  # never show the password
        return f"BearerAuth({self.username!r}, ***)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.register_hook("response", self._on_response)  # type: ignore[no-untyped-call]
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        import requests

        sent = response.request
        # A 401 for a request that already carried a token is the answer: no second round.
        already_bearer = str(sent.headers.get("Authorization", "")).startswith("Bearer ")
        if response.status_code != 401 or already_bearer:
            return response
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme != "bearer" or "realm" not in params:
            return response
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        token_resp = requests.get(
            params["realm"], params=query, auth=(self.username, self.password), timeout=10
        )
        if token_resp.status_code != 200:
            return response
        answer = token_resp.json()
        # The spec lets a server send either name (OAuth2 clients look for access_token).
        token = answer.get("token") or answer.get("access_token")
        response.content  # noqa: B018 (drain the body so the connection can be reused)
        response.close()
        retry = sent.copy()
        retry.headers["Authorization"] = f"Bearer {token}"
        assert response.connection is not None
        new = response.connection.send(retry, **kwargs)
        new.history.append(response)
        new.request = retry
        return new


@dataclass(frozen=True)
class Registry:
    """One running ``docker-registry``. ``host`` is what goes in an image reference.

    The ``token`` registry also has ``token_realm`` and ``token_service``; its
    ``username``/``password`` are the issuer's test user.
    """

    name: str
    host: str
    url: str
    scheme: str
    username: str | None
    password: str | None
    ca_file: Path | None
    pid: int
    root: Path
    log_file: Path
    config_file: Path
    token_realm: str | None = None
    token_service: str | None = None

    @property
    def auth(self) -> tuple[str, str] | BearerAuth | None:
        """``requests``' ``auth=``: a basic-auth tuple, a BearerAuth for the token registry,
        or None for an anonymous registry."""
        if self.username is None or self.password is None:
            return None
        if self.token_realm is not None:
            return BearerAuth(self.username, self.password)
        return (self.username, self.password)

    @property
    def auth_config(self) -> dict[str, str] | None:
        """The docker SDK's ``auth_config`` for push/pull, or None when anonymous. The engine
        does the token dance itself with these for the token registry."""
        if self.username is None or self.password is None:
            return None
        return {"username": self.username, "password": self.password}

    @property
    def verify(self) -> str | bool:
        """``requests``' ``verify=``: the bed's CA for the TLS registry."""
        return str(self.ca_file) if self.ca_file is not None else True

    def image(self, repository: str, tag: str | None = None) -> str:
        """``127.0.0.1:PORT/repository[:tag]``."""
        ref = f"{self.host}/{repository}"
        return f"{ref}:{tag}" if tag else ref


@dataclass(frozen=True)
class TokenIssuer:
    """The ``token`` registry's realm (``tests/tokenissuer.py``), with its admin API."""

    url: str
    realm: str
    service: str
    issuer: str
    username: str
    password: str
    pid: int
    root: Path
    log_file: Path
    config_file: Path
    key_file: Path
    cert_file: Path

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ValueError(f"token issuer {method} {path}: {exc.code} {exc.read()!r}") from exc

    def stats(self) -> dict[str, Any]:
        """``issued``, ``anonymous``, ``denied``, ``by_user``, ``recent`` (subject and access
        of the last tokens), ``config``."""
        result: dict[str, Any] = self._call("GET", "/_stats")
        return result

    def configure(
        self,
        *,
        expires_in: int | None = None,
        grant: Sequence[str] | Literal["unchanged"] | None = "unchanged",
        registry_leeway: int | None = None,
    ) -> dict[str, Any]:
        """Change what the next tokens look like: ``expires_in`` seconds of life (what the
        registry accepts, its 60 s leeway included), ``grant`` caps the actions of every
        token (e.g. ``["pull", "push"]``: nobody may delete; None: no cap)."""
        body: dict[str, Any] = {}
        if expires_in is not None:
            body["expires_in"] = expires_in
        if grant != "unchanged":
            body["grant"] = list(grant) if grant is not None else None
        if registry_leeway is not None:
            body["registry_leeway"] = registry_leeway
        result: dict[str, Any] = self._call("POST", "/_config", body)
        return result

    def reset(self) -> None:
        """Counters to zero and the configuration of start-up back."""
        self._call("POST", "/_reset", {})

    def token(self, *scopes: str, auth: tuple[str, str] | Literal["user"] | None = "user") -> str:
        """A token for ``scopes`` (``repository:NAME:pull,push``), as the test user by default."""
        query = urllib.parse.urlencode([("service", self.service), *(("scope", s) for s in scopes)])
        request = urllib.request.Request(f"{self.realm}?{query}")
        credentials = (self.username, self.password) if auth == "user" else auth
        if credentials is not None:
            basic = base64.b64encode(":".join(credentials).encode()).decode()
            request.add_header("Authorization", f"Basic {basic}")
        with urllib.request.urlopen(request, timeout=10) as resp:
            return str(json.loads(resp.read())["token"])


@dataclass(frozen=True)
class Testbed:
    """Everything ``start()`` brought up; ``stop()`` takes it down again."""

    __test__ = False  # a name starting with "Test" is not a pytest test class here

    root: Path
    engine: Engine
    plain: Registry
    basic: Registry
    tls: Registry
    ca_file: Path
    docker_config: Path
    certs_d_file: Path
    token: Registry
    token_issuer: TokenIssuer

    @property
    def registries(self) -> dict[str, Registry]:
        return {r.name: r for r in (self.plain, self.basic, self.tls, self.token)}

    def env(self) -> dict[str, str]:
        """Environment for a process that should use the bed (imgtag, docker CLI, skopeo)."""
        return {
            "DOCKER_HOST": self.engine.host,
            # Holds `auths` for the basic-auth registry, as `docker login` would write it.
            "DOCKER_CONFIG": str(self.docker_config),
            "IMGTAG_TESTBED_DIR": str(self.root),
            "IMGTAG_TESTBED_PLAIN": self.plain.host,
            "IMGTAG_TESTBED_BASIC": self.basic.host,
            "IMGTAG_TESTBED_BASIC_USER": self.basic.username or "",
            "IMGTAG_TESTBED_BASIC_PASSWORD": self.basic.password or "",
            "IMGTAG_TESTBED_TLS": self.tls.host,
            "IMGTAG_TESTBED_CA_FILE": str(self.ca_file),
            "IMGTAG_TESTBED_TOKEN": self.token.host,
            "IMGTAG_TESTBED_TOKEN_USER": self.token.username or "",
            "IMGTAG_TESTBED_TOKEN_PASSWORD": self.token.password or "",
            # Admin API: GET /_stats, POST /_config {"expires_in": 2}, POST /_reset.
            "IMGTAG_TESTBED_TOKEN_ISSUER": self.token_issuer.url,
        }

    def stop(self) -> None:
        """Stop every process of the bed, remove its certs.d entries and its directory."""
        stop_dir(self.root)


# --------------------------------------------------------------------------- helpers


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    tail = text.strip().splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def _fail(service: str, why: str, log: Path | None = None) -> TestbedError:
    message = f"test bed: {service} did not start: {why}."
    if log is not None:
        message += f"\n--- last lines of {log}:\n{_log_tail(log)}"
    return TestbedError(message)


def _which(program: str) -> str:
    path = shutil.which(program, path=f"{os.environ.get('PATH', '')}:{_SBIN_PATH}")
    if path is None:
        package = DEBIAN_PACKAGE_OF.get(program, program)
        raise TestbedError(
            f"test bed: {program} is not installed: apt-get install {package} "
            "(scripts/test.sh installs every package the bed needs)."
        )
    return path


def _run(argv: Sequence[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a short helper command; its failure is a start-up failure of ``what``."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise _fail(what, f"`{shlex.join(argv)}` exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _free_port() -> int:
    # Bind-to-0 then close leaves a small window for someone else to take the port; the
    # caller retries with a new port when the service reports "address already in use".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_static_elf(path: Path) -> bool:
    """True when ``path`` is an ELF file without a PT_INTERP header (no dynamic loader)."""
    with path.open("rb") as fh:
        head = fh.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only: Debian amd64/arm64
            return False
        order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
        phoff = int.from_bytes(head[32:40], order)
        phentsize = int.from_bytes(head[54:56], order)
        phnum = int.from_bytes(head[56:58], order)
        fh.seek(phoff)
        table = fh.read(phentsize * phnum)
    pt_interp = 3
    return all(
        int.from_bytes(table[i * phentsize : i * phentsize + 4], order) != pt_interp
        for i in range(phnum)
    )


def _spawn(argv: Sequence[str], log_file: Path, env: Mapping[str, str] | None = None) -> int:
    """Start a service detached from our session, so that `up` can leave it running and a
    Ctrl-C in pytest reaches pytest (which then tears down) rather than the services."""
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


#: Popen handles of the processes this interpreter started, reaped in _stop_pid().
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie we cannot reap (not our child) counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _stop_pid(pid: int, marker: str, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL, the process ``pid`` if its command line contains ``marker``
    (the bed's directory): a recycled pid belonging to someone else is never signalled."""
    if not _alive(pid) or marker not in _cmdline(pid):
        _CHILDREN.pop(pid, None)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=timeout)


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the engine's unix socket, so waiting for dockerd needs no docker SDK."""

    def __init__(self, socket_path: str, timeout: float = 2.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


def _engine_get(socket_path: str, path: str) -> tuple[int, bytes]:
    conn = _UnixHTTPConnection(socket_path)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- engine


def _start_engine(root: Path) -> Engine:
    dockerd = _which("dockerd")
    override = os.environ.get("IMGTAG_TESTBED_STORAGE_DRIVER")
    # overlay2 is fast and works here; vfs (full copies) works wherever dockerd runs at all.
    drivers = [override] if override else ["overlay2", "vfs"]
    failures: list[str] = []
    for driver in drivers:
        try:
            return _start_engine_with(root, dockerd, driver)
        except TestbedError as exc:
            failures.append(str(exc))
    raise TestbedError("\n".join(failures))


def _start_engine_with(
    root: Path,
    dockerd: str,
    driver: str | None,
    *,
    name: str = "engine",
    daemon_config: Mapping[str, Any] | None = None,
    path_first: Sequence[Path] = (),
) -> Engine:
    """Start one dockerd in ``root/name``. ``driver`` None: no ``--storage-driver`` (the
    containerd image store picks its snapshotter); ``path_first``: directories put before
    PATH (the 26 engine's own containerd and shims)."""
    engine_dir = root / name
    shutil.rmtree(engine_dir, ignore_errors=True)  # leftovers of a failed driver attempt
    engine_dir.mkdir()
    socket_path = str(engine_dir / "d.sock")
    log_file = engine_dir / "dockerd.log"
    daemon_json = engine_dir / "daemon.json"
    # A config file of our own, so that a host's /etc/docker/daemon.json cannot change (or
    # conflict with) the flags below.
    daemon_json.write_text(json.dumps(dict(daemon_config or {})) + "\n")
    # containerd namespaces must match [A-Za-z0-9]+([._-][A-Za-z0-9]+)*: mkdtemp names may
    # hold "-_" (seen: "itb-_9dvgwwb"), so keep only the letters and digits.
    suffix = "" if name == "engine" else name
    namespace = "imgtag" + "".join(ch for ch in root.name + suffix if ch.isalnum())
    argv = [
        dockerd,
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--ip-forward=false",
        "--ip-masq=false",
        f"--host=unix://{socket_path}",
        f"--data-root={engine_dir / 'data'}",
        f"--exec-root={engine_dir / 'x'}",
        f"--pidfile={engine_dir / 'dockerd.pid'}",
        f"--config-file={daemon_json}",
        *([f"--storage-driver={driver}"] if driver else []),
        # At info level the grpc chatter would push the reason for a failure out of the
        # log tail that start-up errors quote.
        "--log-level=warn",
        # Own namespaces in case dockerd attaches to a system containerd instead of
        # starting its own: two engines must not see each other's containers.
        f"--containerd-namespace={namespace}",
        f"--containerd-plugins-namespace={namespace}-plugins",
    ]
    env = dict(os.environ)
    env["PATH"] = ":".join([*map(str, path_first), env.get("PATH", ""), _SBIN_PATH])
    pid = _spawn(argv, log_file, env)
    service = f"dockerd ({name}, storage driver {driver or 'containerd snapshotter'})"
    deadline = time.monotonic() + ENGINE_TIMEOUT_S
    while True:
        why = None
        if not _alive(pid):
            why = "the daemon exited"
        else:
            with contextlib.suppress(OSError, http.client.HTTPException):
                if _engine_get(socket_path, "/_ping")[0] == 200:
                    break
            if time.monotonic() > deadline:
                why = f"/_ping did not answer within {ENGINE_TIMEOUT_S:.0f} s"
        if why is not None:
            _stop_pid(pid, f"{root}/")
            # dockerd may have started its containerd before giving up.
            with contextlib.suppress(OSError, ValueError):
                containerd_pid = (engine_dir / "x" / "containerd" / "containerd.pid").read_text()
                _stop_pid(int(containerd_pid.strip()), f"{root}/")
            raise _fail(service, why, log_file)
        time.sleep(0.1)
    _, body = _engine_get(socket_path, "/info")
    actual_driver = str(json.loads(body).get("Driver", "?"))
    return Engine(
        host=f"unix://{socket_path}",
        pid=pid,
        root=engine_dir,
        log_file=log_file,
        storage_driver=actual_driver,
    )


# --------------------------------------------------------------------------- engine 26

#: Debian 13's container toolchain, unpacked by ``scripts/debian13-tools.sh`` (which
#: ``scripts/test.sh`` runs): Docker Engine 26.1, containerd 1.7, buildx 0.13, cosign, oras.
DEBIAN13_ROOT = Path(
    os.environ.get(
        "IMGTAG_DEBIAN13_ROOT",
        str(Path(__file__).resolve().parents[1] / ".tools" / "debian13" / "root"),
    )
)
#: The second engine's daemon.json: the containerd image store, as Docker 29 installs it.
ENGINE26_DAEMON_CONFIG = {"features": {"containerd-snapshotter": True}}


@dataclass(frozen=True)
class Debian13Tools:
    """Paths of Debian 13's programs in ``root`` (see ``scripts/debian13-tools.sh``).

    cosign and oras are here for the tests that sign or copy artifacts; neither needs an
    engine."""

    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "usr" / "bin"

    @property
    def dockerd(self) -> Path:
        return self.root / "usr" / "sbin" / "dockerd"

    @property
    def docker(self) -> Path:
        """The docker CLI 26 (``docker buildx`` needs the plugin in ``$DOCKER_CONFIG``)."""
        return self.bin_dir / "docker"

    @property
    def buildx(self) -> Path:
        return self.root / "usr" / "libexec" / "docker" / "cli-plugins" / "docker-buildx"

    @property
    def cosign(self) -> Path:
        return self.bin_dir / "cosign"

    @property
    def oras(self) -> Path:
        return self.bin_dir / "oras"


def debian13_tools(root: Path | None = None) -> Debian13Tools:
    """The unpacked toolchain, or a TestbedError that says how to fetch it."""
    tools = Debian13Tools(root or DEBIAN13_ROOT)
    missing = [
        p for p in (tools.dockerd, tools.docker, tools.buildx, tools.cosign, tools.oras)
        if not os.access(p, os.X_OK)
    ]  # fmt: skip
    if missing:
        raise TestbedError(
            f"test bed: Debian 13's toolchain is missing ({', '.join(map(str, missing))}): "
            "run bash scripts/debian13-tools.sh (scripts/test.sh does it)."
        )
    return tools


@dataclass(frozen=True)
class ModernEngine:
    """The bed's second engine: Debian 13's dockerd 26 with the containerd image store,
    its CLI and the buildx plugin (in a docker config of its own, so that the 20.10 CLI
    of the first engine never finds buildx)."""

    engine: Engine
    tools: Debian13Tools
    docker_config: Path
    version: str

    @property
    def host(self) -> str:
        return self.engine.host

    def env(self, bed: Testbed) -> dict[str, str]:
        """``bed.env()`` pointed at this engine: its socket, its docker config (the same
        ``auths`` plus ``cli-plugins/docker-buildx``) and its docker CLI first on PATH."""
        return {
            **bed.env(),
            "DOCKER_HOST": self.engine.host,
            "DOCKER_CONFIG": str(self.docker_config),
            "PATH": f"{self.tools.bin_dir}:{os.environ.get('PATH', '')}",
            "IMGTAG_TESTBED_ENGINE26_HOST": self.engine.host,
            "IMGTAG_TESTBED_COSIGN": str(self.tools.cosign),
            "IMGTAG_TESTBED_ORAS": str(self.tools.oras),
        }


@dataclass(frozen=True)
class BedEngine:
    """One engine a test runs against: ``name`` is ``"20.10"`` (Debian 12's, the classic
    image store, the docker CLI 20.10 with its own BuildKit) or ``"26"`` (Debian 13's, the
    containerd image store, buildx); ``env`` is the bed's environment for it."""

    name: str
    host: str
    env: Mapping[str, str]
    containerd_store: bool
    docker_cli: str


def bed_engine(bed: Testbed, modern: ModernEngine | None) -> BedEngine:
    """The 20.10 engine (``modern`` None) or the 26 one, as a :class:`BedEngine`."""
    if modern is None:
        return BedEngine("20.10", bed.engine.host, bed.env(), False, "/usr/bin/docker")
    return BedEngine("26", modern.host, modern.env(bed), True, str(modern.tools.docker))


def start_engine26(bed: Testbed, tools: Debian13Tools | None = None) -> ModernEngine:
    """Start the second engine in ``bed.root/engine26`` and record it in the bed's state, so
    that ``bed.stop()`` stops it too. Meant to be called lazily, by the tests that ask."""
    tools = tools or debian13_tools()
    # The containerd of Debian 13 and its shims first on PATH; runc is the host's (Debian
    # 13's needs glibc 2.38), found through the sbin directories after it.
    engine = _start_engine_with(
        bed.root,
        str(tools.dockerd),
        None,
        name="engine26",
        daemon_config=ENGINE26_DAEMON_CONFIG,
        path_first=(tools.bin_dir,),
    )
    state = json.loads((bed.root / "state.json").read_text())
    state["pids"].append(engine.pid)
    state.setdefault("containerd_pidfiles", []).append(
        str(engine.root / "x" / "containerd" / "containerd.pid")
    )
    _write_state(bed.root, state)
    docker_config = engine.root / "docker-config"
    (docker_config / "cli-plugins").mkdir(parents=True)
    shutil.copyfile(bed.docker_config / "config.json", docker_config / "config.json")
    (docker_config / "cli-plugins" / "docker-buildx").symlink_to(tools.buildx)
    _, body = _engine_get(engine.host.removeprefix("unix://"), "/version")
    version = str(json.loads(body).get("Version", "?"))
    return ModernEngine(engine=engine, tools=tools, docker_config=docker_config, version=version)


# --------------------------------------------------------------------------- registries


def _make_tls(root: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost, made with openssl."""
    openssl = _which("openssl")
    tls = root / "tls"
    tls.mkdir()
    ca_key, ca_crt = tls / "ca.key", tls / "ca.crt"
    key, csr, crt = tls / "server.key", tls / "server.csr", tls / "server.crt"
    # P-256 keys: generated instantly, unlike RSA, and accepted by Go and OpenSSL alike.
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(
        [openssl, "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_crt),
         "-days", "7", "-subj", f"/CN=imgtag test bed CA {root.name}",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        "the test bed CA (openssl)",
    )  # fmt: skip
    _run(
        [openssl, "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1"],
        "the registry certificate (openssl)",
    )
    ext = tls / "server.ext"
    # Python >= 3.13 verifies strictly (VERIFY_X509_STRICT): it wants the key identifiers.
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _run(
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
         "-set_serial", f"0x{secrets.token_hex(16)}", "-days", "7",
         "-extfile", str(ext), "-out", str(crt)],
        "the registry certificate (openssl)",
    )  # fmt: skip
    return ca_crt, crt, key


def _registry_config(
    storage: Path, port: int, auth: dict[str, Any] | None, tls: dict[str, str] | None
) -> dict[str, Any]:
    http_cfg: dict[str, Any] = {
        "addr": f"127.0.0.1:{port}",
        # A fixed secret silences the "generated random secret" warning on every start.
        "secret": secrets.token_hex(16),
    }
    if tls is not None:
        http_cfg["tls"] = tls
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "formatter": "text"},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            # Upload purging would scan storage on start-up; nothing here lives that long.
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": http_cfg,
    }
    if auth is not None:
        config["auth"] = auth
    return config


def _start_registry(
    root: Path,
    name: str,
    *,
    username: str | None = None,
    password: str | None = None,
    htpasswd_file: Path | None = None,
    tls: tuple[Path, Path, Path] | None = None,
    token: TokenIssuer | None = None,
) -> Registry:
    binary = _which("docker-registry")
    reg_dir = root / f"reg-{name}"
    reg_dir.mkdir()
    storage = reg_dir / "storage"
    storage.mkdir()
    log_file = reg_dir / "registry.log"
    config_file = reg_dir / "config.yml"
    auth: dict[str, Any] | None = None
    if htpasswd_file is not None:
        auth = {"htpasswd": {"realm": f"imgtag-testbed-{name}", "path": str(htpasswd_file)}}
    elif token is not None:
        auth = {
            "token": {
                "realm": token.realm,
                "service": token.service,
                "issuer": token.issuer,
                # The issuer's self-signed certificate is the trust root; tokens carry it
                # in their x5c header and Distribution verifies that chain against this.
                "rootcertbundle": str(token.cert_file),
            }
        }
    tls_cfg = {"certificate": str(tls[1]), "key": str(tls[2])} if tls is not None else None
    scheme = "https" if tls is not None else "http"
    context = ssl.create_default_context(cafile=str(tls[0])) if tls is not None else None
    service = f"docker-registry '{name}'"
    last_error = "no attempt"
    for _attempt in range(3):
        port = _free_port()
        # JSON is valid YAML, and json.dumps quotes every path correctly.
        config_file.write_text(json.dumps(_registry_config(storage, port, auth, tls_cfg)))
        log_file.write_text("")
        pid = _spawn([binary, "serve", str(config_file)], log_file)
        url = f"{scheme}://127.0.0.1:{port}"
        deadline = time.monotonic() + REGISTRY_TIMEOUT_S
        while True:
            if not _alive(pid):
                last_error = "it exited"
                break
            status = _http_status(f"{url}/v2/", context)
            if status in (200, 401):  # 401: the auth registry answers, as it should
                return Registry(
                    name=name,
                    host=f"127.0.0.1:{port}",
                    url=url,
                    scheme=scheme,
                    username=username,
                    password=password,
                    ca_file=tls[0] if tls is not None else None,
                    pid=pid,
                    root=reg_dir,
                    log_file=log_file,
                    config_file=config_file,
                    token_realm=token.realm if token is not None else None,
                    token_service=token.service if token is not None else None,
                )
            if time.monotonic() > deadline:
                _stop_pid(pid, f"{root}/")
                why = f"{url}/v2/ did not answer 200/401 within {REGISTRY_TIMEOUT_S:.0f} s"
                raise _fail(service, f"{why} (last answer: {status})", log_file)
            time.sleep(0.05)
        if "address already in use" not in log_file.read_text(errors="replace"):
            break  # a real failure: retrying on another port would only hide it
    raise _fail(service, last_error, log_file)


def _make_token_key(root: Path) -> tuple[Path, Path]:
    """The token issuer's RSA 2048 key and self-signed certificate, made with openssl."""
    token_dir = root / "token"
    token_dir.mkdir()
    key_file, cert_file = token_dir / "issuer.key", token_dir / "issuer.crt"
    argv = [
        _which("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
        "-keyout", str(key_file), "-out", str(cert_file),
        "-days", "7", "-subj", f"/CN=imgtag test bed token issuer {root.name}",
    ]  # fmt: skip
    try:
        _run(argv, "the token issuer's key (openssl)", timeout=KEYGEN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        why = f"openssl did not make an RSA key within {KEYGEN_TIMEOUT_S:.0f} s"
        raise _fail("the token issuer's key (openssl)", why) from None
    return key_file, cert_file


def _start_token_side(root: Path) -> tuple[TokenIssuer, Registry]:
    """Key, issuer and token registry, in that order. Runs in a thread of its own while
    the engine and the other registries start: RSA 2048 key generation alone takes
    0.1-1.5 s (a random prime search), which would otherwise add to every start-up.
    On failure it stops what it started itself; on success the caller owns both pids."""
    key_file, cert_file = _make_token_key(root)
    issuer = _start_token_issuer(root, key_file, cert_file)
    try:
        registry = _start_registry(
            root, "token", username=issuer.username, password=issuer.password, token=issuer
        )
    except BaseException:
        _stop_pid(issuer.pid, f"{root}/")
        raise
    return issuer, registry


def _start_token_issuer(root: Path, key_file: Path, cert_file: Path) -> TokenIssuer:
    """Start ``tests/tokenissuer.py`` on a port of its choosing (it binds port 0 and
    reports the port in a file: no race for a free port)."""
    service = "the token issuer (tests/tokenissuer.py)"
    token_dir = root / "token"
    password = secrets.token_urlsafe(12)
    config_file = token_dir / "issuer.json"
    # The password goes in a file readable by root only, never in argv (visible to all).
    config_file.touch(mode=0o600)
    config_file.write_text(
        json.dumps(
            {
                "service": TOKEN_SERVICE,
                "issuer": TOKEN_ISSUER,
                "key": str(key_file),
                "cert": str(cert_file),
                "users": {TOKEN_USER: password},
            }
        )
    )
    ready_file = token_dir / "port"
    log_file = token_dir / "issuer.log"
    # -E -s: no PYTHON* variables, no user site; the issuer needs the stdlib and its own
    # directory (tests/httpbase.py, which -I would leave off the path).
    argv = [sys.executable, "-E", "-s", "-u", str(TOKEN_ISSUER_SCRIPT),
            "--config", str(config_file), "--ready-file", str(ready_file)]  # fmt: skip
    pid = _spawn(argv, log_file)
    deadline = time.monotonic() + REGISTRY_TIMEOUT_S
    while True:
        if not _alive(pid):
            raise _fail(service, "it exited", log_file)
        with contextlib.suppress(OSError, ValueError):
            port = int(ready_file.read_text().strip())
            url = f"http://127.0.0.1:{port}"
            if _http_status(f"{url}/healthz", None) == 200:
                return TokenIssuer(
                    url=url,
                    realm=f"{url}/token",
                    service=TOKEN_SERVICE,
                    issuer=TOKEN_ISSUER,
                    username=TOKEN_USER,
                    password=password,
                    pid=pid,
                    root=token_dir,
                    log_file=log_file,
                    config_file=config_file,
                    key_file=key_file,
                    cert_file=cert_file,
                )
        if time.monotonic() > deadline:
            _stop_pid(pid, f"{root}/")
            raise _fail(service, f"no answer within {REGISTRY_TIMEOUT_S:.0f} s", log_file)
        time.sleep(0.02)


def _http_status(url: str, context: ssl.SSLContext | None) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, http.client.HTTPException):
        return None


# --------------------------------------------------------------------------- start / stop


def _install_ca(registry_host: str, ca_file: Path) -> tuple[Path, list[Path]]:
    """Write the CA where dockerd looks for it (it re-reads certs.d on every push, so no
    restart is needed). Returns the file and the directories this call created.

    dockerd counts 127.0.0.0/8 as an insecure registry and then skips certificate
    verification altogether (it never even reads certs.d for it), so a push to the TLS
    registry of this bed succeeds with or without this entry; it is written for tools
    that read certs.d the way dockerd does for other hosts.
    """
    created: list[Path] = []
    target = CERTS_D / registry_host
    for directory in (CERTS_D.parent, CERTS_D, target):
        # A parallel bed (pytest-xdist) may create the same parent at the same moment.
        with contextlib.suppress(FileExistsError):
            directory.mkdir()
            created.append(directory)
    installed = target / "ca.crt"
    shutil.copyfile(ca_file, installed)
    return installed, created


def _write_state(root: Path, state: dict[str, Any]) -> None:
    tmp = root / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2, default=str))
    tmp.replace(root / "state.json")


def start(base: Path | None = None) -> Testbed:
    """Start the whole bed; on any failure stop what had started and raise TestbedError."""
    if os.geteuid() != 0:
        raise TestbedError("test bed: dockerd did not start: it must run as root (sudo).")
    if not BUSYBOX.exists():
        raise TestbedError(
            f"test bed: cannot build test images: {BUSYBOX} is missing "
            "(apt-get install busybox-static)."
        )
    if not _is_static_elf(BUSYBOX):
        raise TestbedError(
            f"test bed: cannot build test images: {BUSYBOX} is dynamically linked and would "
            "not run in a FROM scratch image (apt-get install busybox-static)."
        )
    base = base or BASE_DIR
    root = Path(tempfile.mkdtemp(prefix="itb-", dir=base))
    state: dict[str, Any] = {"root": str(root), "pids": [], "certs_d_dirs": []}
    _write_state(root, state)
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="testbed-token")
    token_side = executor.submit(_start_token_side, root)
    try:
        engine = _start_engine(root)
        state["pids"].append(engine.pid)
        state["engine_pidfile"] = str(engine.root / "dockerd.pid")
        state["containerd_pidfile"] = str(engine.root / "x" / "containerd" / "containerd.pid")
        _write_state(root, state)

        plain = _start_registry(root, "plain")
        state["pids"].append(plain.pid)
        _write_state(root, state)

        username, password = "imgtag", secrets.token_urlsafe(12)
        htpasswd_file = root / "htpasswd"
        # -B: Distribution accepts bcrypt only. -i reads the password from stdin, so it
        # never shows up in a process listing.
        proc = _run(
            [_which("htpasswd"), "-niB", username],
            "the htpasswd file (htpasswd)",
            input=password + "\n",
        )
        htpasswd_file.write_text(proc.stdout)
        basic = _start_registry(
            root, "basic", username=username, password=password, htpasswd_file=htpasswd_file
        )
        state["pids"].append(basic.pid)
        _write_state(root, state)

        ca_crt, crt, key = _make_tls(root)
        tls = _start_registry(root, "tls", tls=(ca_crt, crt, key))
        state["pids"].append(tls.pid)
        installed, created = _install_ca(tls.host, ca_crt)
        state["certs_d_file"] = str(installed)
        state["certs_d_dirs"] = [str(p) for p in created]
        _write_state(root, state)

        issuer, token = token_side.result()
        state["pids"] += [issuer.pid, token.pid]
        _write_state(root, state)

        docker_config = root / "docker-config"
        docker_config.mkdir()
        # As `docker login` writes them; for the token registry the CLI stores the basic
        # credentials too and the client fetches tokens with them.
        auths = {
            reg.host: {"auth": base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()}
            for reg in (basic, token)
        }
        (docker_config / "config.json").write_text(json.dumps({"auths": auths}, indent=2))
        bed = Testbed(
            root=root,
            engine=engine,
            plain=plain,
            basic=basic,
            tls=tls,
            ca_file=ca_crt,
            docker_config=docker_config,
            certs_d_file=installed,
            token=token,
            token_issuer=issuer,
        )
        state["env"] = bed.env()
        _write_state(root, state)
        return bed
    except BaseException:
        # The token thread may still be starting its processes: let it finish (its own
        # timeouts bound the wait) so that stop_dir() below knows their pids.
        with contextlib.suppress(BaseException):
            issuer, token = token_side.result(timeout=KEYGEN_TIMEOUT_S + 2 * REGISTRY_TIMEOUT_S)
            if issuer.pid not in state["pids"]:
                state["pids"] += [issuer.pid, token.pid]
                _write_state(root, state)
        # Keep the logs that the error message points to; the processes are gone.
        stop_dir(root, keep_files=True)
        raise
    finally:
        executor.shutdown(wait=False)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root) + "/"
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mount_point = line.split()[4].replace("\\040", " ")
            if mount_point.startswith(prefix):
                found.append(mount_point)
    return found


def stop_dir(root: Path, *, keep_files: bool | None = None) -> None:
    """Stop the bed whose directory is ``root`` (read from its state.json) and clean up."""
    if keep_files is None:
        keep_files = os.environ.get("IMGTAG_TESTBED_KEEP", "") not in ("", "0")
    try:
        state = json.loads((root / "state.json").read_text())
    except (OSError, ValueError):
        state = {}
    # The trailing slash keeps /tmp/itb-abc from matching /tmp/itb-abcd.
    marker = f"{root}/"
    # Registries first, the engine last; a running container would delay dockerd by its
    # shutdown timeout, but the tests run theirs with remove=True.
    for pid in reversed(state.get("pids", [])):
        _stop_pid(int(pid), marker)
    # If dockerd had to be killed it could not stop its containerd: do it by its pidfile.
    for pidfile in [state.get("containerd_pidfile"), *state.get("containerd_pidfiles", [])]:
        with contextlib.suppress(TypeError, OSError, ValueError):
            _stop_pid(int(Path(pidfile).read_text().strip()), marker)
    if state.get("certs_d_file"):
        with contextlib.suppress(FileNotFoundError):
            Path(state["certs_d_file"]).unlink()
    for directory in reversed(state.get("certs_d_dirs", [])):
        # rmdir, not rmtree: a directory that someone else put files in meanwhile stays.
        with contextlib.suppress(OSError):
            Path(directory).rmdir()
    for mount_point in sorted(_mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)
    if not keep_files:
        # rm, not shutil.rmtree: the engine's data may hold a layer thousands of levels deep
        # (tests/integration/test_squash.py), and rmtree recurses once per level.
        subprocess.run(["rm", "-rf", "--", str(root)], capture_output=True, check=False)
    with contextlib.suppress(OSError):
        if CURRENT_POINTER.read_text().strip() == str(root):
            CURRENT_POINTER.unlink()


@contextlib.contextmanager
def running(base: Path | None = None) -> Iterator[Testbed]:
    """``with running() as bed:`` starts the bed and always stops it."""
    bed = start(base)
    try:
        yield bed
    finally:
        bed.stop()


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class PushResult:
    digest: str
    lines: tuple[dict[str, Any], ...]


class PushError(RuntimeError):
    """The engine reported an error inside the push stream."""


def build_scratch_image(
    client: docker.DockerClient,
    tag: str,
    content: str,
    *,
    cmd: Sequence[str] = ("/busybox", "cat", "/content.txt"),
    labels: Mapping[str, str] | None = None,
) -> docker.models.images.Image:
    """Build ``FROM scratch`` + Debian's static busybox + a file with ``content``.

    Different ``content`` gives a different image (and digest); the busybox layer is
    cached and shared. By default the container prints ``content``.
    """
    with tempfile.TemporaryDirectory(prefix="itb-ctx-") as ctx:
        context = Path(ctx)
        shutil.copy2(BUSYBOX, context / "busybox")
        (context / "content.txt").write_text(content)
        (context / "Dockerfile").write_text(
            "FROM scratch\n"
            "COPY busybox /busybox\n"
            "COPY content.txt /content.txt\n"
            f"CMD {json.dumps(list(cmd))}\n"
        )
        image, _logs = client.images.build(
            path=str(context), tag=tag, rm=True, forcerm=True, labels=dict(labels or {})
        )
    return image


def push_image(
    client: docker.DockerClient, reference: str, auth_config: Mapping[str, str] | None = None
) -> PushResult:
    """Push ``repo:tag`` through the engine; raise PushError on any ``errorDetail`` line
    (the SDK's push() itself never raises for those) and return the pushed digest."""
    repository, _, tag = reference.rpartition(":")
    if "/" in tag or not repository:
        raise ValueError(f"push_image needs repo:tag, got {reference!r}")
    lines: list[dict[str, Any]] = []
    digest = None
    for line in client.api.push(
        repository,
        tag=tag,
        stream=True,
        decode=True,
        auth_config=dict(auth_config) if auth_config is not None else None,
    ):
        lines.append(line)
        if "errorDetail" in line or "error" in line:
            raise PushError(f"push of {reference} failed: {line.get('error', line)}")
        aux = line.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            digest = str(aux["Digest"])
    if digest is None:
        raise PushError(f"push of {reference} reported no digest: {lines[-3:]}")
    return PushResult(digest=digest, lines=tuple(lines))


# --------------------------------------------------------------------------- command line


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a bed, print `export` lines for it, leave it running")
    up.add_argument(
        "--engine26",
        action="store_true",
        help="also start Debian 13's engine 26 (IMGTAG_TESTBED_ENGINE26_* and the tools' paths)",
    )
    down = sub.add_parser("down", help="stop a bed started by `up`")
    down.add_argument("dir", nargs="?", help="its directory (default: the last `up`)")
    args = parser.parse_args(argv)

    if args.command == "up":
        previous = CURRENT_POINTER.read_text().strip() if CURRENT_POINTER.exists() else ""
        if previous and Path(previous, "state.json").exists():
            print(
                f"test bed: one from `up` is still running in {previous}: "
                "stop it first with: python tests/testbed.py down",
                file=sys.stderr,
            )
            return 1
        started = time.monotonic()
        try:
            bed = start()
        except TestbedError as exc:
            print(exc, file=sys.stderr)
            return 1
        CURRENT_POINTER.write_text(f"{bed.root}\n")
        exports = bed.env()
        if args.engine26:
            try:
                modern = start_engine26(bed)
            except TestbedError as exc:
                print(exc, file=sys.stderr)
                bed.stop()
                return 1
            exports.update(
                {
                    "IMGTAG_TESTBED_ENGINE26_HOST": modern.host,
                    "IMGTAG_TESTBED_ENGINE26_DOCKER_CONFIG": str(modern.docker_config),
                    "IMGTAG_TESTBED_ENGINE26_DOCKER": str(modern.tools.docker),
                    "IMGTAG_TESTBED_COSIGN": str(modern.tools.cosign),
                    "IMGTAG_TESTBED_ORAS": str(modern.tools.oras),
                }
            )
        for name, value in exports.items():
            print(f"export {name}={shlex.quote(value)}")
        print(
            f"# test bed up in {time.monotonic() - started:.1f} s, storage driver "
            f"{bed.engine.storage_driver}; stop it with: python tests/testbed.py down",
            file=sys.stderr,
        )
        return 0

    target = args.dir or (CURRENT_POINTER.read_text().strip() if CURRENT_POINTER.exists() else None)
    if not target:
        print("test bed: nothing to stop (no directory given, no bed from `up`).", file=sys.stderr)
        return 1
    stop_dir(Path(target))
    print(f"# test bed in {target} stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
