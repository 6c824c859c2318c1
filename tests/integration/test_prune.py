"""``imgtag prune`` against the real registry (Distribution, seeded through its API), with
faults injected by a proxy in front of it, and the compare-and-delete executor.

Every check of what survived reads the REAL registry directly (never through the proxy):
tags with the digest each points at, and the manifest revisions still linked in the
registry's storage (so a leftover untag placeholder cannot hide as an untagged manifest).

Faults: the command line uses the default RetryPolicy (backoff 0.5 s doubling, 5 attempts).
Tests that inject many faults shorten it with the ``fast_retries`` fixture
(``IMGTAG_RETRY_BACKOFF``); one test keeps the defaults on purpose.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import testbed as tb
from clirun import CliResult, run_cli
from faultproxy import FaultProxy
from seed import seed_image, seed_index
from tagger.prune import execute, gather, plan
from tagger.registry.client import RegistryClient
from tagger.registry.mediatypes import DOCKER_LIST, OCI_INDEX
from tagger.registry.transport import RetryPolicy, Transport

FAST = RetryPolicy(attempts=5, backoff=0.01, max_backoff=0.05)
PLAN_KEYS = {"image", "tag", "digest", "created", "action", "reason"}
SIGNATURE = re.compile(r"^sha256-[0-9a-f]{64}\.(sig|att|sbom)$")


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def real(registry_plain: tb.Registry) -> RegistryClient:
    """A client straight to the plain registry: seeding and every after-the-fact check."""
    return RegistryClient(Transport(registry_plain.host, lambda: None, retry=FAST))


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's transports retry with a 10 ms backoff instead of 0.5 s (same attempts)."""
    monkeypatch.setenv("IMGTAG_RETRY_BACKOFF", "0.01")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory outside any git repository: no project configuration."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def new_repo(label: str) -> str:
    return f"prune/{label}-{uuid.uuid4().hex[:8]}"


def tags_of(client: RegistryClient, repo: str) -> dict[str, str]:
    """Every tag of ``repo`` and the digest it points at, as the registry says now."""
    out = {}
    for tag in client.list_tags(repo):
        info = client.head_manifest(repo, tag)
        assert info is not None, tag
        out[tag] = info.digest
    return out


def digest_of(client: RegistryClient, repo: str, tag: str) -> str | None:
    info = client.head_manifest(repo, tag)
    return info.digest if info is not None else None


def live_manifests(registry: tb.Registry, repo: str) -> set[str]:
    """Digests of the manifests ``repo`` still holds, tagged or not (Distribution's
    filesystem layout: a deleted manifest loses the ``link`` of its revision)."""
    revisions = (
        registry.root / "storage/docker/registry/v2/repositories" / repo / "_manifests/revisions"
    )
    return {
        f"{algo.name}:{rev.name}"
        for algo in revisions.iterdir()
        for rev in algo.iterdir()
        if (rev / "link").is_file()
    }


def prune(args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> CliResult:
    return run_cli(["prune", *args], cwd=cwd, env=env)


def plan_rows(result: CliResult) -> list[dict[str, object]]:
    doc = json.loads(result.stdout)
    rows: list[dict[str, object]] = doc["plan"]
    return rows


def actions_of(result: CliResult) -> dict[str, str]:
    return {str(r["tag"]): str(r["action"]) for r in plan_rows(result)}


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_untagged(client: RegistryClient, repo: str, content: str) -> str:
    """An image in ``repo`` without a tag (pushed by digest), e.g. an index's child."""
    # Seeding is deterministic: the same content gives the same manifest, hence digest.
    digest = seed_image(client, "prune/scratch", "probe", content)
    assert seed_image(client, repo, digest, content) == digest
    return digest


def signature_tag(subject: str, kind: str = "sig") -> str:
    return f"sha256-{subject.removeprefix('sha256:')}.{kind}"


def assert_kept_intact(after: Mapping[str, str], before: Mapping[str, str], keep: set[str]) -> None:
    for tag in keep:
        assert after.get(tag) == before[tag], f"{tag}: kept, so it must be there, unchanged"


# --- the policy, exactly ------------------------------------------------------------------


def test_apply_leaves_exactly_what_the_policy_keeps(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = new_repo("exact")
    for tag in [
        "1.0.0-1",  # --keep
        "1.0.0-2",  # nothing keeps it
        "1.0.0-3",  # keep-per-version 1
        "1.9.0-0",  # nothing
        "1.9.0-1",  # keep-per-version
        "1.10.0-1",  # keep-per-version
        "2.0.0-rc.1-0",  # nothing (keep-last #3)
        "2.0.0-rc.1-1",  # keep-last #2 (a release after its pre-releases)
        "2.0.0-1",  # keep-last #1
        "dev",  # no candidate: never touched
        "1.2",  # no candidate
    ]:
        seed_image(real, repo, tag, f"content of {tag}")
    seed_image(real, repo, "latest", "content of 2.0.0-1")  # an alias of 2.0.0-1
    before = tags_of(real, repo)
    keep = set(before) - {"1.0.0-2", "1.9.0-0", "2.0.0-rc.1-0"}

    result = prune(
        [registry_plain.image(repo), "--apply", "--keep-last", "2", "--keep-per-version", "1",
         "--keep", r"^1\.0\.0-1$"],
        workdir,
    )  # fmt: skip
    assert result.code == 0, result
    after = tags_of(real, repo)
    assert after == {tag: before[tag] for tag in keep}
    assert live_manifests(registry_plain, repo) == set(after.values())
    assert "all done" in result.stdout
    # A second run has nothing left to do.
    again = prune(
        [registry_plain.image(repo), "--apply", "--keep-last", "2", "--keep-per-version", "1",
         "--keep", r"^1\.0\.0-1$", "--format", "json"],
        workdir,
    )  # fmt: skip
    assert again.code == 0, again
    assert set(actions_of(again).values()) == {"keep"}
    assert tags_of(real, repo) == after


def test_tags_outside_match_are_untouched(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = new_repo("match")
    for day, tag in enumerate(["pr-1", "pr-2", "1.0.0-1", "1.0.0-2", "latest", "pr-x"], 1):
        seed_image(real, repo, tag, f"content of {tag}", created=f"2026-11-{day:02}T00:00:00Z")
    before = tags_of(real, repo)
    result = prune(
        [registry_plain.image(repo), "--apply", "--match", r"^pr-\d+$", "--keep-last", "1",
         "--keep-per-version", "0"],
        workdir,
    )  # fmt: skip
    assert result.code == 0, result
    # pr-2 is both the newest and the higher: whatever "highest" means outside the grammar.
    assert tags_of(real, repo) == {t: before[t] for t in before if t != "pr-1"}


def test_keep_last_under_a_custom_match_keeps_the_newest(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = new_repo("match-order")
    for n in range(1, 13):
        seed_image(real, repo, f"pr-{n}", f"pr {n}", created=f"2026-11-{n:02}T00:00:00Z")
    result = prune(
        [registry_plain.image(repo), "--match", r"^pr-\d+$", "--keep-last", "3",
         "--format", "json"],
        workdir,
    )  # fmt: skip
    assert result.code == 0, result
    kept = {tag for tag, action in actions_of(result).items() if action == "keep"}
    assert kept == {"pr-12", "pr-11", "pr-10"}


def test_a_kept_tag_sharing_a_digest_with_a_removed_tag_survives(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    # Distribution cannot DELETE a tag: the untag path pushes a placeholder to the doomed
    # tag and deletes the placeholder by digest. Nothing of it may remain.
    repo = new_repo("untag")
    shared_alias = seed_image(real, repo, "1.0.0-1", "rolled back to")
    seed_image(real, repo, "latest", "rolled back to")
    rebuilt = seed_image(real, repo, "2.0.0-1", "no change")
    seed_image(real, repo, "1.5.0-1", "no change")  # a rebuild that changed nothing
    seed_image(real, repo, "1.0.0-2", "plain old")
    before = tags_of(real, repo)
    # One request at a time: concurrent untags race on Distribution (a known bug, pinned by
    # test_concurrent_untags_all_succeed); this test is about what survives.
    result = prune(
        [registry_plain.image(repo), "--apply", "--keep-last", "1", "--keep-per-version", "0",
         "--format", "json"],
        workdir,
    )  # fmt: skip
    assert result.code == 0, result
    assert actions_of(result) == {
        "2.0.0-1": "keep",
        "latest": "keep",
        "1.5.0-1": "untag",
        "1.0.0-1": "untag",
        "1.0.0-2": "delete",
    }
    assert tags_of(real, repo) == {"2.0.0-1": before["2.0.0-1"], "latest": before["latest"]}
    # No placeholder (or anything else) left behind, tagged or not.
    assert live_manifests(registry_plain, repo) == {shared_alias, rebuilt}
    assert real.get_manifest(repo, shared_alias).digest == shared_alias


# Not strict: a race, it fails most runs (about 5 in 6 here), not every run.
def test_concurrent_untags_all_succeed(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    # Floating aliases on many old builds, the everyday case of `latest`, `1`, `1.4` ...
    repo = new_repo("untag-race")
    newest = seed_image(real, repo, "9.0.0-1", "newest")

    def seed_aliased(n: int) -> tuple[str, str]:
        digest = seed_image(real, repo, f"1.0.{n}-1", f"build {n}")
        manifest = real.get_manifest(repo, digest)
        real.put_manifest(repo, f"alias-{n}", manifest.raw, manifest.media_type)
        return f"alias-{n}", digest

    with ThreadPoolExecutor(8) as pool:
        aliased = dict(pool.map(seed_aliased, range(40)))
    result = prune(
        [registry_plain.image(repo), "--apply", "--keep-last", "1", "--keep-per-version", "0",
         "--concurrency", "16"],
        workdir,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert tags_of(real, repo) == {"9.0.0-1": newest, **aliased}


@pytest.mark.parametrize("index_type", [OCI_INDEX, DOCKER_LIST])
def test_a_kept_index_protects_its_children(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path, index_type: str
) -> None:
    repo = new_repo("index")
    amd64 = seed_image(real, repo, "1.0.0-1", "amd64 build")  # a child, also tagged
    arm64 = seed_untagged(real, repo, "arm64 build")
    index = seed_index(real, repo, "2.0.0-1", [amd64, arm64], media_type=index_type)
    other = seed_image(real, repo, "1.0.0-2", "not in any index")
    old_child = seed_untagged(real, repo, "old amd64 build")
    old_index = seed_index(real, repo, "1.5.0-1", [old_child], media_type=index_type)
    result = prune(
        [registry_plain.image(repo), "--apply", "--keep-last", "1", "--keep-per-version", "0",
         "--format", "json"],
        workdir,
    )  # fmt: skip
    assert result.code == 0, result
    assert actions_of(result) == {
        "2.0.0-1": "keep",
        "1.5.0-1": "delete",
        "1.0.0-1": "untag",
        "1.0.0-2": "delete",
    }
    assert tags_of(real, repo) == {"2.0.0-1": index}
    live = live_manifests(registry_plain, repo)
    assert {index, amd64, arm64} <= live
    assert other not in live and old_index not in live
    # The kept index is whole: every child can still be read by digest.
    doc = real.get_manifest(repo, "2.0.0-1").json()
    for entry in doc["manifests"]:
        assert real.get_manifest(repo, entry["digest"]).digest == entry["digest"]


def test_signature_tags_follow_their_subject(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = new_repo("sigs")
    doomed = seed_image(real, repo, "1.0.0-1", "doomed")
    kept = seed_image(real, repo, "2.0.0-1", "kept")
    untagged = seed_image(real, repo, "1.0.0-2", "aliased")
    seed_image(real, repo, "latest", "aliased")
    sigs = {
        "doomed.sig": signature_tag(doomed),
        "kept.sig": signature_tag(kept),
        "kept.att": signature_tag(kept, "att"),
        "untagged.sbom": signature_tag(untagged, "sbom"),
    }
    for label, tag in sigs.items():
        seed_image(real, repo, tag, f"cosign payload of {label}")
    before = tags_of(real, repo)
    result = prune(
        [registry_plain.image(repo), "--apply", "--keep-last", "1", "--keep-per-version", "0"],
        workdir,
    )  # fmt: skip
    assert result.code == 0, result
    survivors = {"2.0.0-1", "latest", sigs["kept.sig"], sigs["kept.att"], sigs["untagged.sbom"]}
    assert tags_of(real, repo) == {tag: before[tag] for tag in survivors}


def test_keep_within_reads_created_dates(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = new_repo("within")
    now = datetime.now(UTC)
    created = {
        "1.0.0-1": iso(now - timedelta(days=100)),  # old: deleted
        "1.0.0-2": iso(now - timedelta(days=40)),  # old: deleted
        # recent, with the nine fractional digits Go writes
        "1.0.0-3": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z"),
        "1.0.0-4": None,  # missing: unknown, kept
        "1.0.0-5": "1970-01-01T00:00:00Z",  # SOURCE_DATE_EPOCH=0: unknown, kept
        "1.0.0-6": iso(now + timedelta(days=10)),  # the future: unknown, kept
        "1.0.0-7": "last tuesday",  # unparsable: unknown, kept
    }
    for tag, when in created.items():
        seed_image(real, repo, tag, f"content of {tag}", created=when)
    before = tags_of(real, repo)
    args = [registry_plain.image(repo), "--keep-within", "30d", "--keep-last", "0",
            "--keep-per-version", "0", "--format", "json"]  # fmt: skip
    dry = prune(args, workdir)
    assert dry.code == 0, dry
    rows = {r["tag"]: r for r in plan_rows(dry)}
    assert rows["1.0.0-1"]["created"] == created["1.0.0-1"]
    assert str(rows["1.0.0-3"]["created"]).startswith(str(created["1.0.0-3"])[:19])
    assert rows["1.0.0-4"]["created"] is None
    result = prune([*args, "--apply"], workdir)
    assert result.code == 0, result
    assert tags_of(real, repo) == {
        tag: before[tag] for tag in created if tag not in ("1.0.0-1", "1.0.0-2")
    }


# --- output -------------------------------------------------------------------------------


def test_dry_run_is_the_default_and_prints_the_plan_then_a_summary(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path, fault_proxy: FaultProxy
) -> None:
    repo = new_repo("dry")
    for tag in ["1.0.0-1", "1.0.0-2", "2.0.0-1"]:
        seed_image(real, repo, tag, f"content of {tag}")
    seed_image(real, repo, "latest", "content of 1.0.0-1")
    before = tags_of(real, repo)
    fault_proxy.reset()
    # Through the (fault-free) proxy, to see every request the dry run sends.
    result = prune(
        [fault_proxy.image(repo), "--keep-last", "1", "--keep-per-version", "0"], workdir
    )
    assert result.code == 0, result
    assert tags_of(real, repo) == before
    assert fault_proxy.count(method="DELETE|PUT|POST|PATCH") == 0
    lines = result.stdout.strip().splitlines()
    table = {line.split()[1]: line for line in lines[1:-1]}
    assert set(table) == {"1.0.0-1", "1.0.0-2", "2.0.0-1", "latest"}
    assert re.search(r"\bdelete\b", table["1.0.0-2"])
    assert re.search(r"\buntag\b", table["1.0.0-1"])
    assert re.search(r"\bkeep\b", table["2.0.0-1"]) and re.search(r"\bkeep\b", table["latest"])
    assert "TAG" in lines[0] and "ACTION" in lines[0]
    assert "dry run" in lines[-1]  # the summary comes last


def test_json_plan_rows(registry_plain: tb.Registry, real: RegistryClient, workdir: Path) -> None:
    repo = new_repo("json")
    digests = {tag: seed_image(real, repo, tag, tag) for tag in ["1.0.0-1", "2.0.0-1", "dev"]}
    result = prune(
        [registry_plain.image(repo), "--keep-last", "1", "--keep-per-version", "0",
         "--format", "json"],
        workdir,
    )  # fmt: skip
    assert result.code == 0, result
    rows = plan_rows(result)
    assert {str(r["tag"]) for r in rows} == set(digests)
    for row in rows:
        assert set(row) >= PLAN_KEYS, row
        assert row["image"] == registry_plain.image(repo)
        assert row["digest"] == digests[str(row["tag"])]
        assert row["action"] in ("keep", "delete", "untag", "skip")
        assert isinstance(row["reason"], str) and row["reason"]
    assert actions_of(result) == {"2.0.0-1": "keep", "1.0.0-1": "delete", "dev": "keep"}


def test_max_delete_refuses_a_larger_plan(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    small, large = new_repo("max-small"), new_repo("max-large")
    for n in range(1, 3):
        seed_image(real, small, f"1.0.0-{n}", f"small {n}")
    for n in range(1, 6):
        seed_image(real, large, f"1.0.0-{n}", f"large {n}")
    before = {small: tags_of(real, small), large: tags_of(real, large)}
    policy = ["--keep-last", "1", "--keep-per-version", "0"]
    # small removes 1, large removes 4: with two images, the refusal stops both.
    result = prune(
        [registry_plain.image(small), registry_plain.image(large), "--apply", "--max-delete",
         "3", *policy],
        workdir,
    )  # fmt: skip
    assert result.code == 1, result
    assert "max-delete" in result.stderr
    assert {small: tags_of(real, small), large: tags_of(real, large)} == before
    # A limit the plan fits in is no refusal.
    result = prune([registry_plain.image(large), "--apply", "--max-delete", "4", *policy], workdir)
    assert result.code == 0, result
    assert tags_of(real, large) == {"1.0.0-5": before[large]["1.0.0-5"]}


def test_several_images_in_one_run(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    one, two = new_repo("multi-one"), new_repo("multi-two")
    for repo in (one, two):
        for tag in ["1.0.0-1", "1.0.0-2", "1.1.0-1"]:
            seed_image(real, repo, f"{tag}", f"{repo} {tag}")
    seed_image(real, two, "1.1.0-2", "two's newest")
    before = {one: tags_of(real, one), two: tags_of(real, two)}
    result = prune(
        [registry_plain.image(one), registry_plain.image(two), "--apply", "--keep-last", "1",
         "--keep-per-version", "0", "--format", "json"],
        workdir,
    )  # fmt: skip
    assert result.code == 0, result
    images = {r["image"] for r in plan_rows(result)}
    assert images == {registry_plain.image(one), registry_plain.image(two)}
    assert tags_of(real, one) == {"1.1.0-1": before[one]["1.1.0-1"]}
    assert tags_of(real, two) == {"1.1.0-2": before[two]["1.1.0-2"]}


# --- settings: --policy, the project file, precedence, bad input ---------------------------


@pytest.fixture(scope="module")
def config_repo(registry_plain: tb.Registry) -> str:
    repo = new_repo("config")
    client = RegistryClient(Transport(registry_plain.host, lambda: None, retry=FAST))
    for n in range(1, 6):
        seed_image(client, repo, f"1.0.0-{n}", f"config {n}")
    return repo


def kept_count(result: CliResult) -> int:
    assert result.code == 0, result
    return sum(1 for action in actions_of(result).values() if action == "keep")


@pytest.mark.parametrize(
    "text",
    ["keep_last = 2\nkeep_per_version = 0\n", "[prune]\nkeep_last = 2\nkeep_per_version = 0\n"],
)
def test_policy_file_and_option_precedence(
    registry_plain: tb.Registry, config_repo: str, workdir: Path, text: str
) -> None:
    policy = workdir / "policy.toml"
    policy.write_text(text)
    image = registry_plain.image(config_repo)
    assert kept_count(prune([image, "--policy", str(policy), "--format", "json"], workdir)) == 2
    with_option = [image, "--policy", str(policy), "--keep-last", "4", "--format", "json"]
    assert kept_count(prune(with_option, workdir)) == 4


def test_project_file_at_the_git_root(
    registry_plain: tb.Registry, config_repo: str, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    (root / "deploy" / "cron").mkdir(parents=True)
    (root / ".imgtag.toml").write_text("[prune]\nkeep_last = 3\nkeep_per_version = 0\n")
    cwd = root / "deploy" / "cron"
    image = registry_plain.image(config_repo)
    assert kept_count(prune([image, "--format", "json"], cwd)) == 3
    assert kept_count(prune([image, "--keep-last", "1", "--format", "json"], cwd)) == 1
    policy = tmp_path / "policy.toml"
    policy.write_text("keep_last = 2\n")
    # --policy FILE over the project's file, an option over both.
    assert kept_count(prune([image, "--policy", str(policy), "--format", "json"], cwd)) == 2
    with_option = [image, "--policy", str(policy), "--keep-last", "4", "--format", "json"]
    assert kept_count(prune(with_option, cwd)) == 4
    # [tool.imgtag.prune] in pyproject.toml, where there is no .imgtag.toml.
    (root / ".imgtag.toml").unlink()
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'x'\n[tool.imgtag.prune]\nkeep_last = 2\nkeep_per_version = 0\n"
    )
    assert kept_count(prune([image, "--format", "json"], cwd)) == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--match", "("], "--match"),
        (["--keep", "[a-"], "--keep"),
        (["--keep-within", "30days"], "--keep-within"),
        (["--keep-within", "d"], "--keep-within"),
        (["--keep-last", "-1"], "keep-last"),
        (["--policy", "/nonexistent/policy.toml"], "policy"),
    ],
)
def test_bad_input_is_exit_2_and_deletes_nothing(
    registry_plain: tb.Registry,
    config_repo: str,
    real: RegistryClient,
    workdir: Path,
    args: list[str],
    words: str,
) -> None:
    before = tags_of(real, config_repo)
    result = prune([registry_plain.image(config_repo), "--apply", "--keep-last", "0", *args],
                   workdir)  # fmt: skip
    assert result.code == 2, result
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert tags_of(real, config_repo) == before


def test_unknown_key_in_a_policy_file_is_exit_2(
    registry_plain: tb.Registry, config_repo: str, workdir: Path
) -> None:
    policy = workdir / "policy.toml"
    policy.write_text("keep_lats = 3\n")
    result = prune([registry_plain.image(config_repo), "--policy", str(policy)], workdir)
    assert result.code == 2, result
    assert "keep_lats" in result.stderr


@pytest.mark.usefixtures("fast_retries")
@pytest.mark.parametrize("host", ["no-such-registry.invalid", "127.0.0.1:9"])
def test_an_unknown_registry_is_exit_5(workdir: Path, host: str) -> None:
    result = prune([f"{host}/team/app", "--apply"], workdir)
    assert result.code == 5, result
    assert host in result.stderr
    assert "Traceback" not in result.stderr


# --- faults -----------------------------------------------------------------------------


def fault_scenario(client: RegistryClient, repo: str) -> tuple[dict[str, str], set[str]]:
    """A repository with deletes, untags (aliases and rebuilds) and signatures; return the
    tags before and the tags the policy (keep-last 3, keep-per-version 0) keeps."""
    for n in range(1, 9):
        seed_image(client, repo, f"1.0.{n}-1", f"release {n}")
    seed_image(client, repo, "stable", "release 2")  # 1.0.2-1 is untagged, not deleted
    seed_image(client, repo, "1.0.7-0", "release 7")  # a rebuild sharing 1.0.7-1's digest
    subject = seed_image(client, repo, "1.0.1-2", "signed")
    seed_image(client, repo, signature_tag(subject), "signature of 1.0.1-2")
    kept_subject = seed_image(client, repo, "2.0.0-1", "signed and kept")
    seed_image(client, repo, signature_tag(kept_subject), "signature of 2.0.0-1")
    before = tags_of(client, repo)
    keep = {"2.0.0-1", "1.0.8-1", "1.0.7-1", "stable", signature_tag(kept_subject)}
    return before, keep


POLICY = ["--keep-last", "3", "--keep-per-version", "0"]


def failed_tags(stderr: str, image: str) -> set[str]:
    return set(re.findall(rf"^failed: {re.escape(image)}:(\S+):", stderr, re.MULTILINE))


def break_two_removals(proxy: FaultProxy, before: Mapping[str, str]) -> None:
    """Two removals that fail for good: one delete by digest, one untag."""
    proxy.fail(503, method="DELETE", path=re.escape(before["1.0.3-1"]))
    proxy.fail(503, method="DELETE", path=r"/manifests/1\.0\.7-0$")


@pytest.mark.usefixtures("fast_retries")
def test_failed_removals_are_named_exit_5_and_a_rerun_finishes(
    registry_plain: tb.Registry, real: RegistryClient, fault_proxy: FaultProxy, workdir: Path
) -> None:
    repo = new_repo("partial")
    before, keep = fault_scenario(real, repo)
    break_two_removals(fault_proxy, before)
    image = fault_proxy.image(repo)
    result = prune([image, "--apply", *POLICY], workdir)
    assert result.code == 5, result
    assert failed_tags(result.stderr, image) == {"1.0.3-1", "1.0.7-0"}
    assert "Traceback" not in result.stderr
    # Everything else was done; the two failures are still there, unchanged.
    assert tags_of(real, repo) == {t: before[t] for t in keep | {"1.0.3-1", "1.0.7-0"}}
    fault_proxy.clear()
    rerun = prune([image, "--apply", *POLICY], workdir)
    assert rerun.code == 0, rerun
    assert tags_of(real, repo) == {tag: before[tag] for tag in keep}
    assert live_manifests(registry_plain, repo) == {before[tag] for tag in keep}


@pytest.mark.usefixtures("fast_retries")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_faults_never_cost_a_kept_tag_and_a_rerun_finishes(
    registry_plain: tb.Registry,
    real: RegistryClient,
    fault_proxy: FaultProxy,
    workdir: Path,
    seed: int,
) -> None:
    repo = new_repo(f"faults{seed}")
    before, keep = fault_scenario(real, repo)
    doomed = set(before) - keep
    fault_proxy.reset(seed=seed)
    # 503s, 429s and dropped connections on a good part of HEADs and DELETEs (seeded; with
    # concurrent requests which request meets which fault still varies from run to run) ...
    fault_proxy.fail(503, probability=0.3, method="HEAD|DELETE", path="/manifests/")
    fault_proxy.throttle(times=None, retry_after=0, probability=0.1, method="HEAD|DELETE")
    fault_proxy.reset_connection(probability=0.1, method="HEAD|DELETE|PUT")
    # ... and two removals that fail for good.
    break_two_removals(fault_proxy, before)
    image = fault_proxy.image(repo)

    result = prune([image, "--apply", "--concurrency", "4", *POLICY], workdir)
    after = tags_of(real, repo)
    assert_kept_intact(after, before, keep)
    assert result.code == 5, result
    assert "Traceback" not in result.stderr
    if "removing" in result.stderr:  # the faults let the reading through
        named = failed_tags(result.stderr, image)
        assert {"1.0.3-1", "1.0.7-0"} <= named
        assert named <= doomed, "only removals can fail"
        # Whatever is left of the doomed tags is a failure, and said so.
        assert set(after) - keep <= named
    else:  # reading failed after the retries: then nothing at all was removed
        assert after == before

    fault_proxy.clear()
    rerun = prune([image, "--apply", *POLICY], workdir)
    assert rerun.code == 0, rerun
    final = tags_of(real, repo)
    assert {t: final.get(t) for t in keep} == {t: before[t] for t in keep}
    # Exactly the planned state: the kept tags on their digests, nothing else, and no
    # manifest left behind (placeholders included).
    assert set(final) == keep
    assert live_manifests(registry_plain, repo) == {before[t] for t in keep}


@pytest.mark.usefixtures("fast_retries")
def test_an_image_whose_signature_could_not_go_stays_and_a_rerun_finishes(
    registry_plain: tb.Registry, real: RegistryClient, fault_proxy: FaultProxy, workdir: Path
) -> None:
    repo = new_repo("stranded")
    subject = seed_image(real, repo, "1.0.0-1", "signed")
    signature = signature_tag(subject)
    signature_digest = seed_image(real, repo, signature, "signature of 1.0.0-1")
    newest = seed_image(real, repo, "2.0.0-1", "newest")
    fault_proxy.fail(503, method="DELETE", path=re.escape(signature_digest))
    image = fault_proxy.image(repo)
    args = [image, "--apply", "--keep-last", "1", "--keep-per-version", "0"]
    first = prune(args, workdir)
    assert first.code == 5, first
    assert failed_tags(first.stderr, image) == {signature}
    # The signature could not go, so its image stays with it: nothing is stranded.
    assert tags_of(real, repo) == {"2.0.0-1": newest, "1.0.0-1": subject,
                                   signature: signature_digest}  # fmt: skip
    fault_proxy.clear()
    rerun = prune(args, workdir)
    assert rerun.code == 0, rerun
    assert tags_of(real, repo) == {"2.0.0-1": newest}


def test_an_orphaned_signature_stays_unless_orphans(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = new_repo("orphan")
    gone = "sha256:" + hashlib.sha256(repo.encode()).hexdigest()
    orphan = signature_tag(gone)
    seed_image(real, repo, orphan, "signature of an image elsewhere")
    newest = seed_image(real, repo, "2.0.0-1", "newest")
    image = registry_plain.image(repo)
    dry = prune([image, "--format", "json"], workdir)
    row = next(r for r in plan_rows(dry) if r["tag"] == orphan)
    assert (row["action"], row["reason"]) == ("keep", "orphan (--orphans removes it)")
    text = prune([image], workdir)
    assert "keep    orphan (--orphans removes it)" in text.stdout, text.stdout
    kept = prune([image, "--apply"], workdir)
    assert kept.code == 0, kept
    assert set(tags_of(real, repo)) == {"2.0.0-1", orphan}
    removed = prune([image, "--apply", "--orphans"], workdir)
    assert removed.code == 0, removed
    assert tags_of(real, repo) == {"2.0.0-1": newest}


@pytest.mark.usefixtures("fast_retries")
def test_a_transient_error_is_not_reported_as_deletes_disabled(
    real: RegistryClient, fault_proxy: FaultProxy, workdir: Path
) -> None:
    repo = new_repo("probe")
    seed_image(real, repo, "2.0.0-1", "newest")
    seed_image(real, repo, "1.0.0-1", "old")
    fault_proxy.fail(503, method="DELETE")  # the registry is down for deletes, for now
    image = fault_proxy.image(repo)
    result = prune([image, "--apply", "--keep-last", "1", "--keep-per-version", "0"], workdir)
    assert result.code == 5, result
    assert failed_tags(result.stderr, image) == {"1.0.0-1"}
    assert "storage.delete.enabled" not in result.stderr
    assert "503" in result.stderr


def test_a_few_faults_are_retried_with_the_default_policy(
    registry_plain: tb.Registry, real: RegistryClient, fault_proxy: FaultProxy, workdir: Path
) -> None:
    # No fast_retries here: the command line's own backoff (0.5 s, 1 s, ...) absorbs them.
    repo = new_repo("retried")
    before, keep = fault_scenario(real, repo)
    fault_proxy.fail(503, times=1, method="DELETE")
    fault_proxy.reset_connection(times=1, method="HEAD")
    fault_proxy.throttle(times=1, retry_after=1, method="PUT")
    result = prune([fault_proxy.image(repo), "--apply", *POLICY], workdir)
    assert result.code == 0, result
    assert all(f.times == 0 for f in fault_proxy.faults), "every fault was met"
    assert tags_of(real, repo) == {tag: before[tag] for tag in keep}


@pytest.mark.usefixtures("fast_retries")
def test_a_registry_that_fails_while_reading_deletes_nothing(
    real: RegistryClient, fault_proxy: FaultProxy, workdir: Path
) -> None:
    repo = new_repo("readfail")
    before, _ = fault_scenario(real, repo)
    fault_proxy.fail(503, method="HEAD", path=r"/manifests/1\.0\.5-1$")
    result = prune([fault_proxy.image(repo), "--apply", *POLICY], workdir)
    assert result.code == 5, result
    assert fault_proxy.count(method="DELETE|PUT") == 0
    assert tags_of(real, repo) == before


@pytest.mark.usefixtures("fast_retries")
@pytest.mark.parametrize(
    "within", [pytest.param([], id="no-keep-within"),
               pytest.param(["--keep-within", "30d"], id="keep-within")],
)  # fmt: skip
def test_a_rerun_finishes_an_untag_interrupted_after_its_placeholder(
    registry_plain: tb.Registry,
    real: RegistryClient,
    fault_proxy: FaultProxy,
    workdir: Path,
    within: list[str],
) -> None:
    repo = new_repo("placeholder")
    old = iso(datetime.now(UTC) - timedelta(days=90))
    shared = seed_image(real, repo, "1.0.0-1", "aliased", created=old)
    seed_image(real, repo, "latest", "aliased", created=old)
    newest = seed_image(real, repo, "2.0.0-1", "newest", created=old)
    args = [fault_proxy.image(repo), "--apply", "--keep-last", "1", "--keep-per-version", "0",
            *within]  # fmt: skip
    # Every DELETE by digest fails (but the probe for a digest that cannot exist): the
    # placeholder is pushed onto 1.0.0-1 and then cannot be deleted.
    fault_proxy.fail(503, method="DELETE", path=r"/manifests/sha256:(?!0{64})")
    first = prune(args, workdir)
    assert first.code == 5, first
    assert failed_tags(first.stderr, fault_proxy.image(repo)) == {"1.0.0-1"}
    assert digest_of(real, repo, "latest") == shared
    fault_proxy.clear()
    rerun = prune(args, workdir)
    assert rerun.code == 0, rerun
    assert tags_of(real, repo) == {"latest": shared, "2.0.0-1": newest}
    assert live_manifests(registry_plain, repo) == {shared, newest}


# --- compare-and-delete -------------------------------------------------------------------


@pytest.fixture
def moved_repo(real: RegistryClient) -> Iterator[tuple[str, list[plan.Action]]]:
    """A repository planned (keep-last 1), then changed behind the plan's back."""
    repo = new_repo("cas")
    seed_image(real, repo, "2.0.0-1", "kept")
    seed_image(real, repo, "latest", "kept")
    seed_image(real, repo, "1.5.0-1", "kept")  # untag: shares 2.0.0-1's digest
    seed_image(real, repo, "1.0.0-1", "one")  # delete
    seed_image(real, repo, "1.0.0-2", "two")  # delete
    seed_image(real, repo, "1.0.0-3", "three")  # delete, together with 1.0.0-4
    seed_image(real, repo, "1.0.0-4", "three")
    pol = plan.Policy(keep_last=1, keep_per_version=0)
    states, children, _missing = gather.gather(real, repo, pol, 4)
    actions = plan.plan(states, pol, datetime.now(UTC), children)
    assert {a.tag: a.action for a in actions} == {
        "2.0.0-1": "keep", "latest": "keep", "1.5.0-1": "untag", "1.0.0-1": "delete",
        "1.0.0-2": "delete", "1.0.0-3": "delete", "1.0.0-4": "delete",
    }  # fmt: skip
    yield repo, actions


def test_a_tag_moved_since_planning_is_skipped(
    real: RegistryClient, moved_repo: tuple[str, list[plan.Action]]
) -> None:
    repo, actions = moved_repo
    moved = {
        "1.0.0-1": seed_image(real, repo, "1.0.0-1", "one, rebuilt"),
        "1.0.0-4": seed_image(real, repo, "1.0.0-4", "four, its own now"),
        "1.5.0-1": seed_image(real, repo, "1.5.0-1", "1.5 again"),
    }
    kept = {t: digest_of(real, repo, t) for t in ("2.0.0-1", "latest")}
    three = digest_of(real, repo, "1.0.0-3")
    outcomes = execute.apply(real, repo, actions, 4, lambda: uuid.uuid4().hex)
    by_tag = {o.action.tag: o for o in outcomes}
    for tag in moved:
        assert by_tag[tag].ok and by_tag[tag].action.action == "skip", by_tag[tag]
    assert by_tag["1.0.0-2"].ok and by_tag["1.0.0-2"].action.action == "delete"
    after = tags_of(real, repo)
    for tag, digest in {**moved, **kept}.items():
        assert after[tag] == digest, tag
    assert "1.0.0-2" not in after
    # 1.0.0-3 shared its digest with the moved 1.0.0-4: deleted, or skipped and intact.
    if by_tag["1.0.0-3"].action.action == "skip":
        assert after["1.0.0-3"] == three
    else:
        assert by_tag["1.0.0-3"].ok and "1.0.0-3" not in after


def test_a_kept_tag_moved_onto_a_doomed_digest_is_not_lost(
    real: RegistryClient, moved_repo: tuple[str, list[plan.Action]]
) -> None:
    repo, actions = moved_repo
    # A rollback moves latest to 1.0.0-2 while the prune is between planning and deleting.
    target = seed_image(real, repo, "latest", "two")
    execute.apply(real, repo, actions, 4, lambda: uuid.uuid4().hex)
    assert tags_of(real, repo).get("latest") == target


# --- housekeeping: build-push's temporary tags, and a registry that answers DELETE with 405 ---


def test_leftover_temporary_tags_go_and_those_of_a_live_run_stay(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    from tagger.registry.markers import claim_manifest, claim_tag, run_id, temp_tag
    from tagger.registry.mediatypes import EMPTY_CONFIG, OCI_MANIFEST
    from tagger.registry.platform import Platform

    repo = new_repo("tmp")
    now = datetime.now(UTC)
    amd64, arm64 = Platform.parse("linux/amd64"), Platform.parse("linux/arm64")
    # A run killed after writing its index, before removing its temporary tags.
    killed_late = run_id(now - timedelta(minutes=10), "a" * 12)
    child = seed_image(real, repo, temp_tag(killed_late, amd64), f"late child {repo}")
    index = seed_index(real, repo, "1.0.0-1", [child])
    # A run killed before its index: its platform image is referenced by nothing.
    killed_early = run_id(now - timedelta(minutes=10), "b" * 12)
    orphan = seed_image(real, repo, temp_tag(killed_early, arm64), f"early child {repo}")
    # A run building for an hour, its claim renewed a moment ago: its tag stays.
    alive = run_id(now - timedelta(hours=1), "c" * 12)
    busy = seed_image(real, repo, temp_tag(alive, amd64), f"busy child {repo}")
    real.upload_blob(repo, EMPTY_CONFIG)
    claim = claim_manifest("1.0.0-2", "nonce", now - timedelta(hours=1), now, alive)
    claim_digest = real.put_manifest(repo, claim_tag("1.0.0-2"), claim, OCI_MANIFEST)

    result = prune(
        [registry_plain.image(repo), "--apply", "--match", "^nothing$", "--format", "json"],
        workdir,
    )

    assert result.code == 0, result
    rows = {str(r["tag"]): r for r in plan_rows(result)}
    assert rows[temp_tag(killed_late, amd64)]["action"] == "untag"
    assert rows[temp_tag(killed_early, arm64)]["action"] == "delete"
    assert rows[temp_tag(alive, amd64)]["reason"] == "temporary tag of a running build-push"
    assert tags_of(real, repo) == {
        "1.0.0-1": index,
        temp_tag(alive, amd64): busy,
        claim_tag("1.0.0-2"): claim_digest,
    }
    assert child in live_manifests(registry_plain, repo)  # the index still has its child
    assert orphan not in live_manifests(registry_plain, repo)


def test_a_405_to_delete_names_the_provider_option_and_distributions_setting(
    real: RegistryClient, fault_proxy: FaultProxy, workdir: Path
) -> None:
    repo = new_repo("405")
    seed_image(real, repo, "2.0.0-1", "newest")
    seed_image(real, repo, "1.0.0-1", "old")
    fault_proxy.fail(405, method="DELETE")  # as ghcr.io answers
    image = fault_proxy.image(repo)

    result = prune([image, "--apply", "--keep-last", "1", "--keep-per-version", "0"], workdir)

    assert result.code == 5, result
    assert failed_tags(result.stderr, image) == {"1.0.0-1"}
    assert "--provider" in result.stderr and "storage.delete.enabled" in result.stderr
    assert set(tags_of(real, repo)) == {"2.0.0-1", "1.0.0-1"}
