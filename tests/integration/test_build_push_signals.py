"""``imgtag build-push`` cancelled as CI cancels it: a real SIGTERM (SIGINT, SIGHUP) at each
phase of a real process, then the registry, the engine and a retry are inspected.

Before the final write has begun (the existence check, lint, claim, build) the run stops
within seconds, exits 143 and leaves nothing: no tag, no claim, no build container, no
temporary image name. Once the push has begun, it is finished: the tag is verified, the
aliases moved and the result printed before the run exits 143. The fault proxy slows the
one request that marks a phase, so the signal lands inside it.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker
import pytest
from test_build_push import RegistryView, fresh_repo

import testbed as tb
from appfixture import make_app
from faultproxy import FaultProxy
from gitfixture import GitRepoBuilder

ROOT = Path(__file__).resolve().parents[2]
SLOW_DOCKERFILE = """\
FROM scratch
COPY busybox /busybox
RUN ["/busybox", "sleep", "30"]
COPY content.txt /content.txt
CMD ["/busybox", "cat", "/content.txt"]
"""


class Run:
    """One ``imgtag build-push`` process, its stderr read line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path, env: Mapping[str, str]) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("IMGTAG_")}
        full.pop("CI", None)
        full.update({"PYTHONPATH": str(ROOT), "IMGTAG_RETRY_BACKOFF": "0.01", **env})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tagger", "build-push", *args],
            cwd=cwd,
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)

    def wait_for_line(self, needle: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if needle in self.lines.get(timeout=0.2):
                    return
            except queue.Empty:
                assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.err}"
        raise AssertionError(f"never printed {needle!r}: {''.join(self.err)}")

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return self.proc.returncode, out, "".join(self.err)


def wait_until(condition: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("the condition never came true")


@pytest.fixture
def engine(bed_engine: tb.BedEngine) -> Any:
    """The engine under test (each test runs on 20.10 and on 26, containerd store)."""
    client = docker.APIClient(base_url=bed_engine.host, version="auto")
    yield client
    client.close()


@pytest.fixture
def bed_env(bed_engine: tb.BedEngine) -> dict[str, str]:
    return dict(bed_engine.env)


def build_containers(api: Any) -> list[dict[str, Any]]:
    return list(api.containers(all=True))


def imgtag_images(api: Any) -> list[str]:
    """The run's private names (``:imgtag-build-*``, ``:imgtag-tmp-*``) still on the engine."""
    names = [t for image in api.images() for t in image.get("RepoTags") or []]
    return [t for t in names if ":imgtag-build-" in t or ":imgtag-tmp-" in t]


def upload_method(bed_engine: tb.BedEngine) -> str:
    """How the engine sends a layer: the classic store PATCHes chunks, the containerd
    store's pusher (Engine 26) PUTs each blob whole after the POST."""
    return "PUT" if bed_engine.containerd_store else "PATCH"


def stop_at(
    phase: str, proxy: FaultProxy, run: Run, repo: str, engine: Any, before: int, upload: str
) -> None:
    """Wait until ``run`` is inside ``phase`` (the proxy slows that phase's request)."""
    if phase == "lint":
        wait_until(lambda: proxy.count("HEAD", f"/v2/{repo}/manifests/1.0.0-7") >= 1)
        time.sleep(0.3)
    elif phase == "claim":
        wait_until(lambda: proxy.count("HEAD", f"/v2/{repo}/manifests/imgtag-claim-") >= 1)
        time.sleep(0.5)
    elif phase == "build":
        run.wait_for_line("building ")
        wait_until(lambda: len(build_containers(engine)) > before)
        time.sleep(0.5)
    elif phase == "push":
        # The claim uploads a blob too (POST + PUT): count only the engine's uploads.
        run.wait_for_line("The push refers to repository")
        claims = proxy.count(upload, f"/v2/{repo}/blobs/uploads")
        wait_until(lambda: proxy.count(upload, f"/v2/{repo}/blobs/uploads") > claims)
    elif phase == "verify":
        wait_until(lambda: proxy.count("PUT", f"/v2/{repo}/manifests/1.0.0-7") >= 1)
        time.sleep(0.3)
    elif phase == "aliases":
        wait_until(lambda: proxy.count("GET", f"/v2/{repo}/tags/list") >= 1)
        time.sleep(0.3)


def slow_down(phase: str, proxy: FaultProxy, repo: str, upload: str) -> None:
    path = {
        "lint": None,
        "claim": f"/v2/{repo}/manifests/imgtag-claim-",
        "push": f"/v2/{repo}/blobs/uploads",
        "verify": f"/v2/{repo}/manifests/1.0.0-7",
        "aliases": f"/v2/{repo}/manifests/latest",
    }.get(phase)
    method = {"claim": "PUT", "push": upload, "verify": "HEAD", "aliases": "PUT"}.get(phase)
    if path is not None:
        proxy.delay(2.0, method=method, path=path)


def app_for(phase: str, tmp_path: Path) -> GitRepoBuilder:
    if phase == "lint":
        # About a megabyte of RUN lines: lint takes a while, long enough to be caught in.
        body = "".join(f'RUN ["/busybox", "true", "{n}"]\n' for n in range(24_000))
        dockerfile = "FROM scratch\nCOPY busybox /busybox\n" + body
        return make_app(tmp_path / "app", f"lint {phase}", dockerfile=dockerfile)
    if phase == "build":
        return make_app(tmp_path / "app", f"build {phase}", dockerfile=SLOW_DOCKERFILE)
    return make_app(tmp_path / "app", f"content {phase}")


@pytest.mark.parametrize("phase", ["lint", "claim", "build"])
def test_a_signal_before_the_push_leaves_nothing_and_a_retry_succeeds(
    phase: str,
    registry_plain: tb.Registry,
    bed_engine: tb.BedEngine,
    bed_env: dict[str, str],
    engine: Any,
    tmp_path: Path,
) -> None:
    app = app_for(phase, tmp_path)
    repo = fresh_repo(f"sig-{phase}")
    env = {**bed_env, "IMGTAG_BUILDER": "docker"}
    containers_before = len(build_containers(engine))
    with FaultProxy(registry_plain.host) as proxy:
        slow_down(phase, proxy, repo, upload_method(bed_engine))
        image = proxy.image(repo)
        run = Run([image, "--build", "7", "--network", "host"], app.path, env)
        stop_at(phase, proxy, run, repo, engine, containers_before, upload_method(bed_engine))
        sent = time.monotonic()
        run.proc.send_signal(signal.SIGTERM)
        code, out, err = run.finish()
        took = time.monotonic() - sent
    assert code == 143, err
    assert took < 10, f"stopped {took:.1f} s after SIGTERM"
    assert out == ""
    assert "imgtag: error: stopped by SIGTERM; cleaned up" in err and "Traceback" not in err
    view = RegistryView.of(registry_plain)
    assert view.tags(repo) == [], "no tag and no claim tag is left"
    wait_until(lambda: len(build_containers(engine)) == containers_before, timeout=10)
    assert not imgtag_images(engine), "no temporary image name is left"
    if phase == "lint":
        return  # a Dockerfile this long is not worth building again
    retry = Run([registry_plain.image(repo), "--build", "7", "--network", "host"], app.path, env)
    code, out, err = retry.finish(timeout=180)
    assert code == 0, err
    assert view.tags(repo) == ["1.0.0-7"]


@pytest.mark.parametrize("phase", ["push", "verify", "aliases"])
def test_a_signal_once_the_push_began_finishes_verifies_prints_then_exits_143(
    phase: str,
    registry_plain: tb.Registry,
    bed_engine: tb.BedEngine,
    bed_env: dict[str, str],
    engine: Any,
    tmp_path: Path,
) -> None:
    app = app_for(phase, tmp_path)
    repo = fresh_repo(f"sig-{phase}")
    env = {**bed_env, "IMGTAG_BUILDER": "docker"}
    with FaultProxy(registry_plain.host) as proxy:
        slow_down(phase, proxy, repo, upload_method(bed_engine))
        run = Run([proxy.image(repo), "--build", "7", "--alias", "latest"], app.path, env)
        stop_at(phase, proxy, run, repo, engine, 0, upload_method(bed_engine))
        run.proc.send_signal(signal.SIGTERM)
        code, out, err = run.finish()
    assert code == 143, err
    view = RegistryView.of(registry_plain)
    digest = view.digest(repo, "1.0.0-7")
    assert digest is not None, "the push that had begun was finished"
    assert out.strip().endswith(f"{repo}:1.0.0-7@{digest}"), "the result is printed"
    assert sorted(view.tags(repo)) == ["1.0.0-7", "latest"], "aliases moved, no claim left"
    assert view.digest(repo, "latest") == digest
    assert "stopped by SIGTERM" in err
    # A retry of the same job finds the tag it published: --on-exists skip accepts it.
    retry = Run([registry_plain.image(repo), "--build", "7", "--on-exists", "skip"], app.path, env)
    code, _, err = retry.finish()
    assert code == 0, err
    assert view.digest(repo, "1.0.0-7") == digest


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_sigint_and_sighup_during_the_build(
    signum: int,
    code: int,
    registry_plain: tb.Registry,
    bed_env: dict[str, str],
    engine: Any,
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path / "app", f"sig {signum}", dockerfile=SLOW_DOCKERFILE)
    repo = fresh_repo(f"sig{signum}")
    before = len(build_containers(engine))
    env = {**bed_env, "IMGTAG_BUILDER": "docker"}
    run = Run([registry_plain.image(repo), "--build", "1", "--network", "host"], app.path, env)
    run.wait_for_line("building ")
    wait_until(lambda: len(build_containers(engine)) > before)
    run.proc.send_signal(signum)
    got, _, err = run.finish()
    assert got == code, err
    assert RegistryView.of(registry_plain).tags(repo) == []
    wait_until(lambda: len(build_containers(engine)) == before, timeout=10)


@pytest.mark.parametrize(
    ("builder", "bed_engine"),
    [("buildkit", "engine20"), ("buildkit", "engine26"), ("buildah", "engine20")],
    indirect=["bed_engine"],
)
def test_sigterm_during_a_build_of_the_other_builders(
    builder: str, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", f"sig {builder}", dockerfile=SLOW_DOCKERFILE)
    repo = fresh_repo(f"sig-{builder}")
    env = {
        **bed_env,
        "IMGTAG_BUILDER": builder,
        "STORAGE_DRIVER": "vfs",
        "BUILDAH_ISOLATION": "chroot",
    }
    run = Run([registry_plain.image(repo), "--build", "1", "--network", "host"], app.path, env)
    run.wait_for_line("building ")
    run.wait_for_line('"sleep", "30"')  # both builders echo the step they start: the RUN
    sent = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 143, err
    assert time.monotonic() - sent < 10
    assert RegistryView.of(registry_plain).tags(repo) == []
    if builder == "buildah":
        left = subprocess.run(
            ["buildah", "containers", "--quiet"],
            env={**os.environ, "STORAGE_DRIVER": "vfs"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert left == [], "buildah's working container is removed"
