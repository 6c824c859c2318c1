"""imgtag against a hostile registry (``tests/hostile.py``), through the real command line.

Each test runs ``python -m tagger`` as a child process against a scripted server on
loopback and checks what a user sees (exit code, stdout, stderr), what the server
received, and, where memory is the point, the child's peak RSS (``os.wait4``: the
rusage of that one child). The cases are those of issue 15 and of docs/registries.md,
"Untrusted answers". No engine or bed registry is needed.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostile import HostileRegistry, loopback_alias_works

REPO_ROOT = Path(__file__).resolve().parents[2]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: Far above what imgtag needs (≈ 60 MiB here), far below any uncapped read of an endless
#: body (the server sends up to 768 MiB).
RSS_LIMIT_KIB = 200 * 1024

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    max_rss_kib: int

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def imgtag(
    args: list[str], env: Mapping[str, str] | None = None, *, cwd: Path | None = None
) -> Run:
    """``imgtag ARGS`` as a child process, killed after 90 s whatever happens."""
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": tempfile.mkdtemp(prefix="imgtag-home-"),
        "PYTHONPATH": str(REPO_ROOT),
        # Short, so that the time bounds show within a test: 2 s a read, 8 s a body.
        "IMGTAG_TIMEOUT": "2",
        "IMGTAG_RETRIES": "2",
        "IMGTAG_RETRY_BACKOFF": "0",
        **(env or {}),
    }
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tagger", *args],
            stdout=out,
            stderr=err,
            env=full,
            cwd=cwd or REPO_ROOT,
        )
        killer = threading.Timer(90, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            usage.ru_maxrss,
        )


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    manifest: bytes
    config: bytes
    layer: bytes

    @property
    def config_digest(self) -> str:
        return _digest(self.config)

    @property
    def layer_digest(self) -> str:
        return _digest(self.layer)


def make_image(
    created_by: str = "COPY hello /", *, path: str = "hello", config_digest: str | None = None
) -> Image:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(path)
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [_digest(raw.getvalue())]},
            "history": [{"created_by": created_by}],
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest or _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return Image(manifest, config, layer)


def serve_image(
    reg: HostileRegistry, image: Image, *, manifest_headers: Mapping[str, str] = {}
) -> None:
    reg.route(
        "GET",
        r"/v2/app/manifests/1",
        body=image.manifest,
        headers={
            "Content-Type": OCI_MANIFEST,
            "Docker-Content-Digest": _digest(image.manifest),
            **manifest_headers,
        },
    )
    reg.route("GET", rf"/v2/app/blobs/{image.config_digest}", body=image.config)
    reg.route("GET", rf"/v2/app/blobs/{image.layer_digest}", body=image.layer)


@pytest.fixture
def reg() -> Iterator[HostileRegistry]:
    with HostileRegistry() as server:
        yield server


@pytest.fixture
def other() -> Iterator[HostileRegistry]:
    """A second server on 127.0.0.2: "another host" that is still this machine."""
    assert loopback_alias_works(), "127.0.0.2 must be loopback (Linux routes 127/8 to lo)"
    with HostileRegistry("127.0.0.2") as server:
        yield server


def docker_config(tmp_path: Path, auths: Mapping[str, object], **extra: object) -> dict[str, str]:
    directory = tmp_path / "docker"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"auths": auths, **extra}))
    return {"DOCKER_CONFIG": str(directory)}


def v2(reg: HostileRegistry, challenge: str | None = None) -> None:
    """``/v2/``: open, or a 401 with ``challenge``; any request with Authorization passes."""
    if challenge is None:
        reg.route("GET", r"/v2/", body=b"{}")
    else:
        reg.route("GET", r"/v2/", status=401, headers={"WWW-Authenticate": challenge})


# -- credential leaks --------------------------------------------------------------------


def test_realm_with_userinfo_gets_no_credentials(
    reg: HostileRegistry, other: HostileRegistry, tmp_path: Path
) -> None:
    """Issue 15.1: ``http://[::1]@127.0.0.2:PORT/token`` goes to 127.0.0.2, not to ::1."""
    realm = f"http://[::1]@{other.host}/token"
    reg.route(
        "GET",
        r"/v2/app/tags/list",
        status=401,
        headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'},
    )
    other.route("GET", r"/token", body=b'{"token": "abcdefgh1234"}')
    env = docker_config(tmp_path, {reg.host: {"username": "bob", "password": "s3cret-realm-pw"}})
    run = imgtag(["prune", f"{reg.host}/app"], env)
    assert run.code == 5, run.output
    assert "user info" in run.stderr and "127.0.0.2" in run.stderr
    assert other.seen == []  # nothing at all reached the other host
    assert "s3cret-realm-pw" not in run.output


@pytest.mark.parametrize("source", ["fields", "helper"])
def test_error_body_echoing_authorization_is_redacted(
    reg: HostileRegistry, tmp_path: Path, source: str
) -> None:
    """Issue 15.2: username/password fields and helper output are redacted in every form."""
    password = "hunter2-€-pass"
    reg.route("GET", r"/v2/", body=b"{}")
    reg.route(
        "GET",
        r"/v2/app/tags/list",
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="r"'},
        times=1,
    )
    reg.route("GET", r"/v2/app/tags/list", status=403, echo_auth=True)
    env: dict[str, str]
    if source == "fields":
        env = docker_config(tmp_path, {reg.host: {"username": "bob", "password": password}})
    else:
        bindir = tmp_path / "bin"
        bindir.mkdir()
        helper = bindir / "docker-credential-hostile"
        helper.write_text(
            "#!/bin/sh\ncat >/dev/null\n"
            f"printf '%s' '{json.dumps({'Username': 'bob', 'Secret': password})}'\n"
        )
        helper.chmod(0o755)
        env = docker_config(tmp_path, {}, credsStore="hostile")
        env["PATH"] = f"{bindir}:{os.environ['PATH']}"
    run = imgtag(["prune", f"{reg.host}/app"], env)
    assert run.code == 5, run.output
    sent = reg.requests_to(r"tags/list")[-1].headers["authorization"]
    b64 = sent.partition(" ")[2]
    assert base64.b64decode(b64) == f"bob:{password}".encode()  # UTF-8, as docker sends
    assert "denied" in run.stderr.lower()
    assert b64 not in run.output and password not in run.output


def test_registrytoken_with_trailing_newline(reg: HostileRegistry, tmp_path: Path) -> None:
    """Issue 15.3: stripped and sent; never exit 70, never printed."""
    token = "regtoken-SECRET-42"
    v2(reg)
    reg.route(
        "GET",
        r"/v2/app/tags/list",
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="http://127.0.0.1:9/t"'},
        times=1,
    )
    reg.route("GET", r"/v2/app/tags/list", status=500, echo_auth=True)
    env = docker_config(tmp_path, {reg.host: {"registrytoken": token + "\n"}})
    run = imgtag(["prune", f"{reg.host}/app"], env)
    assert run.code == 5, run.output
    assert reg.requests_to(r"tags/list")[-1].headers["authorization"] == f"Bearer {token}"
    assert token not in run.output


def test_registrytoken_with_inner_newline_is_bad_config(
    reg: HostileRegistry, tmp_path: Path
) -> None:
    env = docker_config(tmp_path, {reg.host: {"registrytoken": "abc\r\ndef-SECRET"}})
    v2(reg, 'Basic realm="r"')
    reg.route(
        "GET",
        r"/v2/app/tags/list",
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="http://127.0.0.1:9/t"'},
    )
    run = imgtag(["prune", f"{reg.host}/app"], env)
    assert run.code == 2, run.output
    assert "registrytoken" in run.stderr and "SECRET" not in run.output


# -- memory bounds -----------------------------------------------------------------------


def _bearer_realm(reg: HostileRegistry) -> None:
    reg.route(
        "GET",
        r"/v2/app/tags/list",
        status=401,
        headers={"WWW-Authenticate": f'Bearer realm="http://{reg.host}/token",service="s"'},
    )


@pytest.mark.parametrize("kind", ["manifest", "config", "tags", "token"])
def test_endless_bodies_are_capped(reg: HostileRegistry, kind: str) -> None:
    """Issue 15.4: an endless body is cut at its cap: exit 5 naming it, RSS stays small."""
    v2(reg)
    image = make_image()
    if kind == "manifest":
        reg.route(
            "GET",
            r"/v2/app/manifests/1",
            endless=b'{"a":"' + b"x" * 1000,
            headers={"Content-Type": OCI_MANIFEST},
        )
        args, cap = ["analyze", "--from-registry", f"{reg.host}/app:1"], "4 MiB"
    elif kind == "config":
        reg.route(
            "GET",
            r"/v2/app/manifests/1",
            body=image.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        reg.route("GET", rf"/v2/app/blobs/{image.config_digest}", endless=b"x" * 1000)
        args, cap = ["analyze", "--from-registry", f"{reg.host}/app:1"], "4 MiB"
    elif kind == "tags":
        reg.route("GET", r"/v2/app/tags/list", endless=b'"1.0.0-1",', body=b'{"tags":[')
        args, cap = ["prune", f"{reg.host}/app"], "16 MiB"
    else:
        _bearer_realm(reg)
        reg.route("GET", r"/token", endless=b"x" * 1000, body=b'{"token":"')
        args, cap = ["prune", f"{reg.host}/app"], "1 MiB"
    run = imgtag(args)
    assert run.code == 5, run.output
    assert cap in run.stderr, run.stderr
    assert run.max_rss_kib < RSS_LIMIT_KIB, run.max_rss_kib
    assert reg.streamed < 256 * 1024 * 1024  # the client hung up; the server did not run out


# -- time bounds -------------------------------------------------------------------------


def test_byte_drip_meets_the_body_deadline(reg: HostileRegistry) -> None:
    """Issue 15.6: one byte every 0.2 s never trips a read timeout; the body deadline does."""
    v2(reg)
    reg.route("GET", r"/v2/app/tags/list", drip=b'{"tags":["1.0.0-1"]}' + b" " * 400)
    run = imgtag(["prune", f"{reg.host}/app"])
    assert run.code == 5, run.output
    assert "did not finish sending a page of tags within 8 s" in run.stderr


def test_retry_after_beyond_the_budget_gives_up_at_once(reg: HostileRegistry) -> None:
    v2(reg)
    reg.route("GET", r"/v2/app/tags/list", status=429, headers={"Retry-After": "999999"})
    run = imgtag(["prune", f"{reg.host}/app"], {"IMGTAG_RETRIES": "5"})
    assert run.code == 5, run.output
    assert "asked to wait 999999 s" in run.stderr
    assert len(reg.requests_to(r"tags/list")) == 1  # not retried, not waited for


def test_silent_registry_is_exit_5() -> None:
    with HostileRegistry(silent=True, lifetime=60) as silent:
        run = imgtag(["prune", f"{silent.host}/app"])
    assert run.code == 5, run.output
    assert "did not answer" in run.stderr


# -- bad input is one sentence -----------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    ["127.0.0.1:99999/app", "a" * 70 + ".example/app"],
    ids=["port-99999", "label-70"],
)
def test_bad_registry_host_is_exit_2(image: str) -> None:
    run = imgtag(["prune", image])
    assert run.code == 2, run.output
    assert len(run.stderr.strip().splitlines()) == 1


def test_keep_within_overflow_is_exit_2() -> None:
    run = imgtag(["prune", "127.0.0.1:1/app", "--keep-within", "99999999999d"])
    assert run.code == 2, run.output
    assert "100 years" in run.stderr


def test_huge_wasted_bytes_is_exit_2() -> None:
    run = imgtag(["analyze", "x", "--highest-wasted-bytes", "1" * 320 + "TB"])
    assert run.code == 2, run.output
    assert len(run.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "content",
    [
        b"[tool.imgtag.analyze]\nbase = -1\n",
        b"[analyze]\nbase = -1\n",
        b"tag_prefix = '\xff\xfe'\n",
    ],
    ids=["pyproject-base", "imgtag-base", "not-utf8"],
)
def test_bad_config_is_exit_2(tmp_path: Path, content: bytes) -> None:
    (tmp_path / ".git").mkdir()
    name = "pyproject.toml" if content.startswith(b"[tool.") else ".imgtag.toml"
    (tmp_path / name).write_bytes(content)
    run = imgtag(["analyze", "--from-registry", "127.0.0.1:1/app:1"], cwd=tmp_path)
    assert run.code == 2, run.output
    assert name in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_nul_in_helper_name_is_exit_2(reg: HostileRegistry, tmp_path: Path) -> None:
    v2(reg)
    reg.route(
        "GET", r"/v2/app/tags/list", status=401, headers={"WWW-Authenticate": 'Basic realm="r"'}
    )
    env = docker_config(tmp_path, {}, credHelpers={reg.host: "a\u0000b"})
    run = imgtag(["prune", f"{reg.host}/app"], env)
    assert run.code == 2, run.output
    assert "credential helper name" in run.stderr


def test_helper_names_never_reach_a_shell(reg: HostileRegistry, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    v2(reg)
    reg.route(
        "GET", r"/v2/app/tags/list", status=401, headers={"WWW-Authenticate": 'Basic realm="r"'}
    )
    env = docker_config(tmp_path, {}, credsStore=f"x; touch {marker}")
    run = imgtag(["prune", f"{reg.host}/app"], env)
    assert run.code == 2, run.output
    assert not marker.exists()


@pytest.mark.parametrize(
    "answer",
    [b'{"token": "abcdefgh1234", "expires_in": [1]}', b'{"token": "abcd\\r\\nX-Evil: 1"}'],
    ids=["expires-list", "token-crlf"],
)
def test_bad_token_answers_are_exit_5(reg: HostileRegistry, answer: bytes) -> None:
    _bearer_realm(reg)
    reg.route("GET", r"/token", body=answer)
    run = imgtag(["prune", f"{reg.host}/app"])
    assert run.code == 5, run.output
    assert "token service" in run.stderr
    assert all("x-evil" not in s.headers for s in reg.seen)


def test_giant_git_tag_is_ignored(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "x")
    git("tag", "v1.2.3")
    # Too long for a loose ref file: a packed ref, as a fetch from a server would write it.
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with (tmp_path / ".git" / "packed-refs").open("a") as packed:
        packed.write(f"{head} refs/tags/v{'9' * 5000}.0.0\n")
    run = imgtag(["next"], cwd=tmp_path)
    assert run.code == 0, run.output
    assert run.stdout.startswith("1.2.3"), run.stdout


# -- values from a registry ------------------------------------------------------------------


def test_non_digest_in_a_manifest_never_reaches_a_url(reg: HostileRegistry) -> None:
    """Issue 15.8: ``sha256:../../x`` as the config digest is refused before any request."""
    v2(reg)
    image = make_image(config_digest="sha256:../../x")
    reg.route(
        "GET", r"/v2/app/manifests/1", body=image.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    run = imgtag(["analyze", "--from-registry", f"{reg.host}/app:1"])
    assert run.code == 5, run.output
    assert "not a digest" in run.stderr
    assert [s.path for s in reg.seen if s.path != "/v2/"] == ["/v2/app/manifests/1"]


def test_non_digest_header_is_not_deleted(reg: HostileRegistry) -> None:
    v2(reg)
    reg.route("GET", r"/v2/app/tags/list", body=b'{"tags": ["1.0.0-1", "1.0.0-2"]}')
    reg.route(
        "HEAD",
        r"/v2/app/manifests/.*",
        headers={"Docker-Content-Digest": "sha256:../../x", "Content-Type": OCI_MANIFEST},
    )
    run = imgtag(
        ["prune", f"{reg.host}/app", "--keep-last", "0", "--keep-per-version", "0", "--apply"]
    )
    assert run.code == 5, run.output
    assert not [s for s in reg.seen if s.method == "DELETE" or ".." in s.path]


def test_unknown_media_type_is_refused(reg: HostileRegistry) -> None:
    v2(reg)
    image = make_image()
    reg.route(
        "GET",
        r"/v2/app/manifests/1",
        body=image.manifest.replace(OCI_MANIFEST.encode(), b"text/x-evil"),
        headers={"Content-Type": "text/x-evil\x1b[2J"},
    )
    run = imgtag(["analyze", "--from-registry", f"{reg.host}/app:1"])
    assert run.code == 5, run.output
    assert "media type" in run.stderr and "\x1b" not in run.stderr


def test_control_characters_are_escaped_in_text_and_exact_in_json(reg: HostileRegistry) -> None:
    """Issue 15.9: ESC and CR in created_by reach text output escaped, json exactly."""
    v2(reg)
    created_by = "RUN echo \x1b[31mred\x1b[0m\rover"
    image = make_image(created_by)
    serve_image(reg, image)
    text = imgtag(["analyze", "--from-registry", f"{reg.host}/app:1", "--base", "0"])
    assert text.code == 0, text.output
    assert "\x1b" not in text.stdout and "\r" not in text.stdout
    assert "\\x1b[31mred" in text.stdout
    js = imgtag(
        ["analyze", "--from-registry", f"{reg.host}/app:1", "--base", "0", "--format", "json"]
    )
    assert js.code == 0, js.output
    assert json.loads(js.stdout)["layers"][0]["created_by"] == created_by


def test_escapes_in_tags_and_error_text(reg: HostileRegistry) -> None:
    v2(reg)
    reg.route(
        "GET",
        r"/v2/app/tags/list",
        body=json.dumps({"tags": ["1.0.0-1", "\x1b[2J1.0.0-2", "../../x"]}).encode(),
    )
    reg.route(
        "HEAD",
        r"/v2/app/manifests/1.0.0-1",
        status=500,
        body=json.dumps({"errors": [{"code": "X", "message": "boom\x1b[2J\r"}]}).encode(),
    )
    run = imgtag(["prune", f"{reg.host}/app"])
    assert run.code == 5, run.output
    assert "\x1b" not in run.output and "\r" not in run.output
    assert not [s for s in reg.seen if ".." in s.path or "%1B" in s.path.upper()]


# -- what stays true -------------------------------------------------------------------------


def test_blob_redirect_to_another_host_loses_authorization(
    reg: HostileRegistry, other: HostileRegistry, tmp_path: Path
) -> None:
    image = make_image()
    v2(reg)
    reg.route(
        "GET",
        r"/v2/app/manifests/1",
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="r"'},
        times=1,
    )
    serve_image(reg, image)
    reg.routes.insert(0, reg.routes.pop())  # the layer redirect below goes first
    reg.route(
        "GET",
        rf"/v2/app/blobs/{image.layer_digest}",
        status=307,
        headers={"Location": f"http://{other.host}/layer"},
    )
    reg.routes.insert(0, reg.routes.pop())
    other.route("GET", r"/layer", body=image.layer)
    env = docker_config(tmp_path, {reg.host: {"username": "bob", "password": "redirect-pw-123"}})
    run = imgtag(["analyze", "--from-registry", f"{reg.host}/app:1", "--base", "0"], env)
    assert run.code == 0, run.output
    assert reg.requests_to(r"/blobs/")[-1].headers.get("authorization", "").startswith("Basic ")
    assert [s.path for s in other.seen] == ["/layer"]
    assert "authorization" not in other.seen[0].headers


def test_link_to_another_host_is_refused(reg: HostileRegistry, other: HostileRegistry) -> None:
    v2(reg)
    reg.route(
        "GET",
        r"/v2/app/tags/list",
        body=b'{"tags": ["1.0.0-1"]}',
        headers={"Link": f'<http://{other.host}/v2/app/tags/list?last=a>; rel="next"'},
    )
    run = imgtag(["prune", f"{reg.host}/app"])
    assert run.code == 5, run.output
    assert "another host" in run.stderr
    assert other.seen == []


def test_dotdot_paths_in_a_layer_are_refused(reg: HostileRegistry) -> None:
    v2(reg)
    serve_image(reg, make_image(path="../escape"))
    run = imgtag(["analyze", "--from-registry", f"{reg.host}/app:1", "--base", "0"])
    assert run.code in (2, 5), run.output
    assert ".." in run.stderr


def test_digest_mismatch_is_exit_5(reg: HostileRegistry) -> None:
    v2(reg)
    image = make_image()
    reg.route("GET", rf"/v2/app/blobs/{image.config_digest}", body=image.config + b" ")
    serve_image(reg, image)
    run = imgtag(["analyze", "--from-registry", f"{reg.host}/app:1"])
    assert run.code == 5, run.output
    assert "do not match" in run.stderr
