"""``imgtag prune`` as a cron job lives: housekeeping of claims and placeholders, real
signals, real SIGKILLs, and the re-run that must end exactly where an uninterrupted run ends.

Every prune here is a real ``python -m tagger`` process against the bed's Distribution
registry (through the fault proxy where the test needs the deletes slow enough to be
caught in the act). The registry's state afterwards is the assertion.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import testbed as tb
from faultproxy import FaultProxy
from seed import seed_image
from tagger.registry.client import RegistryClient
from tagger.registry.markers import claim_manifest, claim_tag
from tagger.registry.mediatypes import EMPTY_CONFIG, OCI_MANIFEST
from tagger.registry.transport import RetryPolicy, Transport

FAST = RetryPolicy(attempts=5, backoff=0.01, max_backoff=0.05)
ROOT = Path(__file__).resolve().parents[2]
POLICY = ["--keep-last", "3", "--keep-per-version", "0", "--concurrency", "2"]


@pytest.fixture
def real(registry_plain: tb.Registry) -> RegistryClient:
    return RegistryClient(Transport(registry_plain.host, lambda: None, retry=FAST))


def tags_of(client: RegistryClient, repo: str) -> dict[str, str]:
    """Every tag and its digest. Unlike test_prune's, a tag that goes between the list and
    its HEAD is passed over: a killed prune's last DELETE may still reach the registry."""
    out = {}
    for tag in client.list_tags(repo):
        info = client.head_manifest(repo, tag)
        if info is not None:
            out[tag] = info.digest
    return out


def seed_repo(client: RegistryClient, label: str, count: int = 16) -> str:
    repo = f"lifecycle/{label}-{uuid.uuid4().hex[:8]}"
    for n in range(1, count + 1):
        seed_image(client, repo, f"1.0.0-{n}", f"{repo} build {n}")
    seed_image(client, repo, "latest", f"{repo} build {count}")  # shares the top's digest
    seed_image(client, repo, "1.0.0-2-alias", f"{repo} build 2")  # outside --match
    return repo


def plant_claim(client: RegistryClient, repo: str, tag: str, age: timedelta) -> str:
    """The claim a build-push of ``tag`` would hold, last renewed ``age`` ago."""
    now = datetime.now(UTC)
    client.upload_blob(repo, EMPTY_CONFIG)
    raw = claim_manifest(tag, secrets.token_hex(16), now - age - timedelta(seconds=1), now - age)
    return client.put_manifest(repo, claim_tag(tag), raw, OCI_MANIFEST)


def imgtag(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """``imgtag ARGS`` as its own process, as cron or a CI job starts it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("IMGTAG_") and k != "CI"}
    full_env.update({"PYTHONPATH": str(ROOT), "IMGTAG_RETRY_BACKOFF": "0.01", **(env or {})})
    return subprocess.Popen(
        [sys.executable, "-m", "tagger", *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("the condition never came true")


def kill_when_seen(
    proxy: FaultProxy, proc: subprocess.Popen[str], method: str, path: str, count: int
) -> None:
    """SIGKILL ``proc`` once the registry has seen ``count`` requests ``method path``."""
    wait_until(lambda: proxy.count(method, path) >= count or proc.poll() is not None)
    proc.kill()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "cwd"
    path.mkdir()
    return path


# --- housekeeping -------------------------------------------------------------------------


def test_prune_removes_a_stale_claim_and_never_a_live_one(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = seed_repo(real, "claims", count=4)
    stale = plant_claim(real, repo, "9.9.9-1", timedelta(seconds=90))
    live = plant_claim(real, repo, "9.9.9-2", timedelta(seconds=5))
    # --match names nothing the claims match: housekeeping ignores it.
    dry = imgtag(
        ["prune", registry_plain.image(repo), "--match", "^1\\.0\\.0-", "--format", "json",
         *POLICY],
        workdir,
    )  # fmt: skip
    code, out, err = finish(dry)
    assert code == 0, err
    rows = {r["tag"]: r for r in json.loads(out)["plan"]}
    assert rows[claim_tag("9.9.9-1")]["action"] == "delete"
    assert rows[claim_tag("9.9.9-1")]["reason"].startswith("stale claim: not renewed for 9")
    assert rows[claim_tag("9.9.9-2")]["action"] == "keep"
    assert rows[claim_tag("9.9.9-2")]["reason"] == "live claim of a running build-push"

    code, out, err = finish(
        imgtag(["prune", registry_plain.image(repo), "--apply", *POLICY], workdir)
    )
    assert code == 0, err
    after = tags_of(real, repo)
    assert claim_tag("9.9.9-1") not in after and stale not in after.values()
    assert after[claim_tag("9.9.9-2")] == live, "a live claim is never touched"


def test_the_lease_comes_from_the_environment(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = seed_repo(real, "lease", count=2)
    plant_claim(real, repo, "9.9.9-1", timedelta(seconds=20))
    args = ["prune", registry_plain.image(repo), "--format", "json", *POLICY]
    for lease, action in (("60", "keep"), ("10", "delete")):
        code, out, err = finish(imgtag(args, workdir, {"IMGTAG_CLAIM_LEASE": lease}))
        assert code == 0, err
        rows = {r["tag"]: r["action"] for r in json.loads(out)["plan"]}
        assert rows[claim_tag("9.9.9-1")] == action, lease
    code, _, err = finish(imgtag(args, workdir, {"IMGTAG_CLAIM_LEASE": "soon"}))
    assert code == 2 and "IMGTAG_CLAIM_LEASE" in err and "Traceback" not in err


# --- signals and kills during --apply ------------------------------------------------------


def reference_end(client: RegistryClient, registry: tb.Registry, workdir: Path) -> dict[str, str]:
    """What an uninterrupted run leaves of a fresh repository, tags only (digests differ
    between repositories seeded apart, so compare the tag sets and kept digests)."""
    repo = seed_repo(client, "reference")
    code, _, err = finish(imgtag(["prune", registry.image(repo), "--apply", *POLICY], workdir))
    assert code == 0, err
    return tags_of(client, repo)


def test_sigterm_lets_deletes_in_flight_finish_then_exits_143_and_a_rerun_finishes(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    expected_tags = set(reference_end(real, registry_plain, workdir))
    repo = seed_repo(real, "sigterm")
    before = tags_of(real, repo)
    with FaultProxy(registry_plain.host) as proxy:
        # Slow deletes: the signal lands while some are in flight and others are queued.
        proxy.delay(0.4, method="DELETE")
        proc = imgtag(["prune", proxy.image(repo), "--apply", *POLICY], workdir)
        wait_until(lambda: proxy.count("DELETE") >= 2)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code, out, err = finish(proc, timeout=30)
        took = time.monotonic() - sent
        deletes_seen = proxy.count("DELETE")
    assert code == 143, err
    assert took < 10, f"a stopped prune exits within 10 s, took {took:.1f}"
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert "not started: stopped by SIGTERM" in out, "the plan so far is printed"
    assert "repository: keep" in out, "the summary so far is printed"
    mid = tags_of(real, repo)
    assert len(mid) > len(expected_tags), "it stopped before the end"
    assert deletes_seen < len(before) - len(expected_tags), "queued deletes never started"
    for tag, digest in mid.items():
        assert before[tag] == digest, f"{tag}: nothing surviving was changed"
    assert expected_tags <= set(mid), "nothing a policy keeps was deleted"

    code, _, err = finish(
        imgtag(["prune", registry_plain.image(repo), "--apply", *POLICY], workdir)
    )
    assert code == 0, err
    final = tags_of(real, repo)
    assert set(final) == expected_tags
    assert all(final[t] == before[t] for t in final)


def test_sigterm_while_planning_exits_143_and_deletes_nothing(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = seed_repo(real, "plan-sigterm")
    before = tags_of(real, repo)
    with FaultProxy(registry_plain.host) as proxy:
        proxy.delay(0.5, method="HEAD")  # planning HEADs every tag: slow it down
        proc = imgtag(["prune", proxy.image(repo), "--apply", *POLICY], workdir)
        wait_until(lambda: proxy.count("HEAD") >= 1)
        proc.send_signal(signal.SIGTERM)
        code, _, err = finish(proc, timeout=30)
        assert proxy.count("DELETE") == 0
    assert code == 143, err
    assert tags_of(real, repo) == before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_sigint_and_sighup_exit_130_and_129(
    signum: int, registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = seed_repo(real, f"sig{signum}", count=8)
    with FaultProxy(registry_plain.host) as proxy:
        proxy.delay(0.4, method="DELETE")
        proc = imgtag(["prune", proxy.image(repo), "--apply", *POLICY], workdir)
        wait_until(lambda: proxy.count("DELETE") >= 1)
        proc.send_signal(signum)
        code, _, err = finish(proc, timeout=30)
    assert code == 128 + signum, err


def test_a_second_signal_exits_at_once(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = seed_repo(real, "twice", count=8)
    with FaultProxy(registry_plain.host) as proxy:
        proxy.delay(3.0, method="DELETE")  # in-flight deletes that take long to finish
        proc = imgtag(["prune", proxy.image(repo), "--apply", *POLICY], workdir)
        wait_until(lambda: proxy.count("DELETE") >= 1)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        code, _, err = finish(proc, timeout=30)
    assert code == 143, err
    assert "again: exiting now" in err


def test_sigkill_at_any_instant_then_a_rerun_ends_as_an_uninterrupted_run(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    """Kill prune -9 at staggered instants (planning, untagging through a placeholder,
    deleting), re-run, and compare with a run nobody interrupted. Each instant is a request
    the registry has seen, not a wall-clock guess."""
    expected = reference_end(real, registry_plain, workdir)
    instants = [
        ("HEAD", "/manifests/", 3),  # planning
        ("PUT", "/manifests/1.0.0-2", 1),  # the untag's placeholder stands on 1.0.0-2
        ("DELETE", "/manifests/", 1),  # the first delete
        ("DELETE", "/manifests/", 6),
        ("DELETE", "/manifests/", 11),
    ]
    for n, (method, path, count) in enumerate(instants):
        delay = f"{method} {path} #{count}"  # named as the instant, in messages
        repo = seed_repo(real, f"kill{n}")
        before = tags_of(real, repo)
        with FaultProxy(registry_plain.host) as proxy:
            proxy.delay(0.05)  # every request: the kill lands mid-run
            proc = imgtag(["prune", proxy.image(repo), "--apply", *POLICY], workdir)
            kill_when_seen(proxy, proc, method, path, count)
            proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, f"the run ended before {delay}"
        mid = tags_of(real, repo)
        for tag, digest in mid.items():
            # A tag being untagged may point at its placeholder for a moment: that tag was
            # doomed, and the re-run removes the placeholder. Every other tag is unchanged.
            if tag in expected:
                assert digest == before[tag], f"kill at {delay}: {tag} changed"
        code, _, err = finish(
            imgtag(["prune", registry_plain.image(repo), "--apply", *POLICY], workdir)
        )
        assert code == 0, (delay, err)
        final = tags_of(real, repo)
        assert set(final) == set(expected), delay
        assert all(final[t] == before[t] for t in final), delay
