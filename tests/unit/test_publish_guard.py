"""build-push's guard (``tagger.build.publish.Publisher``) against a fake registry and
engine: the claim, the lost race, the mode for registries that cannot delete, the engine
re-tag check and the alias rules, each fault injected at the moment it matters.

Every test asserts what a user would see: the exit code (the error's ``exit_code``, or a
result for exit 0) and the tags and digests the registry holds afterwards. The same
paths run against real registries and a real engine in tests/integration.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fakes import Call, FakeEngine, FakeRegistry
from tagger.build import publish
from tagger.build.builders.base import Builder, BuildRequest, Built
from tagger.build.builders.docker import DockerBuilder
from tagger.build.labels import REVISION_LABEL
from tagger.build.options import BuildPushOptions, BuildPushResult
from tagger.build.outputs import write_outputs
from tagger.build.publish import Publisher
from tagger.errors import (
    DirtyTreeError,
    EngineError,
    ExitCode,
    OverwriteDetected,
    PolicyError,
    RefusedError,
    RegistryError,
    RegistryUnreachable,
    TagExistsError,
    UsageError,
)
from tagger.registry.manifests import sha256_digest
from tagger.registry.markers import CLAIM_SETTLE_SECONDS, claim_manifest, claim_tag
from tagger.registry.mediatypes import OCI_MANIFEST
from tagger.version.bump import Derivation
from tagger.version.grammar import ImageVersion
from tagger.version.next import NextOptions

IMAGE = "registry.example/team/app"
REPO = "team/app"
TAG = "1.4.3-1"
CLAIM = claim_tag(TAG)
COMMIT = "0123456789abcdef0123456789abcdef01234567"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def derivation(tag: str = TAG, *, dirty: bool = False, commit: str = COMMIT) -> Derivation:
    version = ImageVersion.parse(tag)
    assert version is not None
    return Derivation(version, "v1.4.2", 1, commit, dirty, "local", None)


class Clock:
    """The monotonic clock publish.py measures waits with; it moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Harness:
    """One build-push run's collaborators: the fakes, the log, the sleeps it asked for
    (each moves the clock on, without waiting)."""

    def __init__(self, clock: Clock, registry: FakeRegistry | None = None) -> None:
        self.clock = clock
        self.registry = registry or FakeRegistry()
        self.engine = FakeEngine(self.registry)
        self.log: list[str] = []
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], None] | None = None

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(seconds)

    def publisher(
        self, d: Derivation | None = None, *, signer: Any = None, **options: Any
    ) -> Publisher:
        options.setdefault("lint", False)
        opts = BuildPushOptions(image=IMAGE, next=NextOptions(), **options)
        return Publisher(
            opts,
            derive=lambda: d or derivation(),
            client=self.registry,
            engine=self.engine,
            auth_config=lambda: {"username": "ci", "password": "pw"},
            remote_url=lambda: "git@github.com:acme/app.git",
            log=self.log.append,
            now=lambda: NOW,
            sleep=self.sleep,
            signer=signer,
        )

    def run(
        self, d: Derivation | None = None, *, signer: Any = None, **options: Any
    ) -> BuildPushResult:
        return self.publisher(d, signer=signer, **options).run()

    def tags(self) -> dict[str, str]:
        return self.registry.tags(REPO)

    def config_digest(self, digest: str) -> str:
        doc = json.loads(self.registry.repo(REPO).manifests[digest][0])
        return str(doc["config"]["digest"])

    def writes(self) -> list[Call]:
        """Every request that changes the registry."""
        return [
            c
            for c in self.registry.calls
            if c.method in ("put_manifest", "delete_manifest", "upload_blob")
        ]


def _no_real_sleep(seconds: float) -> None:
    raise AssertionError(f"publish.py slept {seconds} s for real instead of via its sleep=")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(
        publish, "time", SimpleNamespace(monotonic=fake.monotonic, sleep=_no_real_sleep)
    )
    return fake


@pytest.fixture
def h(clock: Clock) -> Harness:
    return Harness(clock)


@pytest.fixture
def h_nodelete(clock: Clock) -> Harness:
    """A registry without storage.delete.enabled (or Docker Hub): claims are not used."""
    return Harness(clock, FakeRegistry(deletes=False))


def claim_digests(h: Harness) -> set[str]:
    """Digests of every claim manifest still stored (tagged or not)."""
    out = set()
    for digest, (raw, _mt) in h.registry.repo(REPO).manifests.items():
        if b"org.imgtag.claim.nonce" in raw:
            out.add(digest)
    return out


def contender_claim(age: timedelta) -> bytes:
    return claim_manifest(TAG, "contender-nonce", NOW - age)


# -- the clean path ----------------------------------------------------------------------


def test_clean_publish_tag_holds_the_pushed_image_and_the_claim_is_gone(h: Harness) -> None:
    result = h.run()

    assert result.pushed and result.tag == TAG and result.image == IMAGE
    assert result.digest is not None
    assert h.tags() == {TAG: result.digest}  # no claim tag left, nothing else
    assert claim_digests(h) == set()  # the claim manifest was deleted by its digest
    # The registry holds the image built by this run, labelled with its commit.
    (build,) = h.engine.builds
    built_id = h.engine.names.get(f"{IMAGE}:{TAG}")
    assert built_id is not None and h.config_digest(result.digest) == built_id
    assert build["labels"][REVISION_LABEL] == COMMIT
    assert build["labels"]["org.opencontainers.image.source"] == "https://github.com/acme/app"
    assert build["labels"]["org.opencontainers.image.created"] == "2026-05-01T12:00:00Z"
    # The run's private build name is gone from the engine again.
    assert h.engine.untagged == [build["tag"]]
    assert build["tag"].startswith(f"{IMAGE}:imgtag-build-")
    # One claim PUT, confirmed after the settle time.
    assert len(h.registry.called("put_manifest", CLAIM)) == 1
    assert h.sleeps == [CLAIM_SETTLE_SECONDS]
    assert result.as_dict() == {
        "image": IMAGE,
        "tag": TAG,
        "digest": result.digest,
        "aliases": [],
        "pushed": True,
        "lint": "skipped",
        "lint_findings": {},
        "squash": None,
        "builder": "docker",
        "signed": False,
        "signatures": [],
        "check": "skipped",
    }


def test_build_args_and_labels_reach_the_engine_and_user_labels_win(h: Harness) -> None:
    h.run(build_args=("A=1", "B=x=y"), labels=(f"{REVISION_LABEL}=mine",), target="prod")

    (build,) = h.engine.builds
    assert build["buildargs"] == {"A": "1", "B": "x=y"}
    assert build["target"] == "prod"
    assert build["labels"][REVISION_LABEL] == "mine"


def test_a_bad_build_arg_is_a_usage_error_before_anything(h: Harness) -> None:
    with pytest.raises(UsageError, match="--build-arg 'NOEQUALS' is not KEY=VALUE") as exc:
        h.run(build_args=("NOEQUALS",))
    assert exc.value.exit_code == ExitCode.USAGE
    assert h.registry.calls == [] and h.engine.builds == []


# -- step 1 and 2: dirty tree, existing tag ------------------------------------------------


def test_dirty_tree_is_refused_before_the_registry_is_asked(h: Harness) -> None:
    with pytest.raises(DirtyTreeError, match=r"uncommitted changes.*--allow-dirty") as exc:
        h.run(derivation(dirty=True))
    assert exc.value.exit_code == ExitCode.REFUSED
    assert h.registry.calls == [] and h.engine.builds == []


def test_dirty_tree_publishes_with_allow_dirty(h: Harness) -> None:
    result = h.run(derivation(dirty=True), allow_dirty=True)
    assert result.pushed and h.tags() == {TAG: result.digest}


def test_existing_tag_is_refused_naming_its_digest(h: Harness) -> None:
    existing = h.registry.add_image(REPO, TAG, {REVISION_LABEL: COMMIT})

    with pytest.raises(TagExistsError) as exc:
        h.run()

    assert exc.value.exit_code == ExitCode.REFUSED
    assert f"{IMAGE}:{TAG} already exists ({existing})" in str(exc.value)
    assert h.tags() == {TAG: existing}
    assert h.writes() == [] and h.engine.builds == []


def test_on_exists_skip_accepts_the_same_revision_without_building(h: Harness) -> None:
    existing = h.registry.add_image(REPO, TAG, {REVISION_LABEL: COMMIT})

    result = h.run(on_exists="skip")

    assert result.digest == existing and not result.pushed
    assert h.tags() == {TAG: existing}
    assert h.writes() == [] and h.engine.builds == []
    assert any("skipped" in line for line in h.log)


@pytest.mark.parametrize(
    ("labels", "shown"),
    [({REVISION_LABEL: "fedcba9876543210" * 2}, "fedcba987654"), ({}, "no revision label")],
)
def test_on_exists_skip_refuses_another_revision(
    h: Harness, labels: dict[str, str], shown: str
) -> None:
    existing = h.registry.add_image(REPO, TAG, labels)

    with pytest.raises(TagExistsError) as exc:
        h.run(on_exists="skip")

    assert exc.value.exit_code == ExitCode.REFUSED
    assert f"exists ({existing}) but was built from {shown}, not {COMMIT[:7]}" in str(exc.value)
    assert h.tags() == {TAG: existing} and h.engine.builds == []


# -- step 3: lint --------------------------------------------------------------------------


def test_lint_errors_stop_before_any_claim(h: Harness, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM ubuntu\nRUN true\n")

    with pytest.raises(PolicyError, match=r"IMG001 at line 1.*nothing was built") as exc:
        h.run(lint=True, context=str(tmp_path))

    assert exc.value.exit_code == ExitCode.POLICY
    # Only the existence check reached the registry: no claim, no probe, no write.
    assert h.registry.calls == [Call("head_manifest", REPO, TAG)]
    assert h.engine.builds == [] and h.tags() == {}
    assert any(line.startswith("lint: ") and "IMG001" in line for line in h.log)


def test_lint_passes_on_a_clean_dockerfile_and_the_publish_goes_on(
    h: Harness, tmp_path: Path
) -> None:
    dockerfile = tmp_path / "app.Dockerfile"
    dockerfile.write_text("FROM busybox:1.36.1\nCOPY app /app\nUSER 1000\n")

    result = h.run(lint=True, context=str(tmp_path), file=str(dockerfile))

    assert result.lint == "passed" and result.pushed
    assert h.tags() == {TAG: result.digest}
    assert h.engine.builds[0]["dockerfile"] == str(dockerfile.resolve())


def test_a_missing_file_fails_after_the_claim_and_releases_it(h: Harness) -> None:
    with pytest.raises(UsageError, match="no such Dockerfile") as exc:
        h.run(file="/nonexistent/Dockerfile")
    assert exc.value.exit_code == ExitCode.USAGE
    assert h.tags() == {} and claim_digests(h) == set() and h.engine.builds == []


def test_dry_run_builds_and_writes_nothing(h: Harness) -> None:
    result = h.run(dry_run=True)

    assert not result.pushed and result.digest is None and result.tag == TAG
    assert h.registry.calls == [Call("head_manifest", REPO, TAG)]
    assert h.engine.builds == [] and h.engine.pushes == []
    assert f"dry run: would build {IMAGE}:{TAG} with the docker builder" in h.log


# -- step 4 and 5: the claim ------------------------------------------------------------------


def test_a_live_claim_of_another_run_is_refused_with_the_wait(h: Harness) -> None:
    # 30 s: well inside the default lease.
    theirs = h.registry.store(REPO, CLAIM, contender_claim(timedelta(seconds=30)), OCI_MANIFEST)

    with pytest.raises(RefusedError) as exc:
        h.run()

    assert exc.value.exit_code == ExitCode.REFUSED
    message = str(exc.value)
    assert f"another imgtag run is publishing {IMAGE}:{TAG} (" in message
    assert CLAIM in message and "30 s ago" in message and "run again" in message
    assert h.tags() == {CLAIM: theirs}  # their claim untouched
    assert h.writes() == [] and h.engine.builds == []


@pytest.mark.parametrize(
    "held",
    [
        contender_claim(timedelta(minutes=16)),  # a run that died: older than any lease
        b'{"schemaVersion":2,"annotations":{}}',  # no readable claim
    ],
)
def test_a_stale_or_unreadable_claim_is_taken_over(h: Harness, held: bytes) -> None:
    h.registry.store(REPO, CLAIM, held, OCI_MANIFEST)

    result = h.run()

    assert result.pushed
    assert h.tags() == {TAG: result.digest}  # our claim replaced theirs and went away
    assert len(h.registry.called("put_manifest", CLAIM)) == 1


def test_a_claim_released_between_head_and_get_is_no_claim(h: Harness) -> None:
    theirs = h.registry.store(REPO, CLAIM, contender_claim(timedelta(seconds=5)), OCI_MANIFEST)
    h.registry.on("head_manifest", CLAIM, after=True, do=lambda reg, _c: reg.drop(REPO, theirs))

    result = h.run()

    assert result.pushed and h.tags() == {TAG: result.digest}


def test_lost_race_at_confirm_pushes_nothing_and_releases_our_claim(h: Harness) -> None:
    ours: list[str] = []
    theirs = sha256_digest(contender_claim(timedelta(0)))

    def contender_writes_last(reg: FakeRegistry, _call: Call) -> None:
        ours.append(reg.tags(REPO)[CLAIM])
        reg.store(REPO, CLAIM, contender_claim(timedelta(0)), OCI_MANIFEST)

    h.registry.on("put_manifest", CLAIM, after=True, do=contender_writes_last)

    with pytest.raises(RefusedError, match="at the same time and won: nothing was pushed") as exc:
        h.run()

    assert exc.value.exit_code == ExitCode.REFUSED
    assert h.engine.pushes == []
    assert h.tags() == {CLAIM: theirs}  # the winner's claim stands, no image tag
    assert ours and ours[0] != theirs
    assert h.registry.called("delete_manifest", ours[0])  # ours released by its digest
    assert not h.registry.has_manifest(REPO, ours[0])


def test_tag_appearing_while_building_is_refused_and_nothing_pushed(h: Harness) -> None:
    theirs: list[str] = []
    h.engine.during_build = lambda: theirs.append(
        h.registry.add_image(REPO, TAG, {REVISION_LABEL: "other"}, salt="contender")
    )

    with pytest.raises(TagExistsError, match="appeared while building") as exc:
        h.run()

    assert exc.value.exit_code == ExitCode.REFUSED
    assert theirs[0] in str(exc.value)
    assert h.engine.pushes == []
    assert h.tags() == {TAG: theirs[0]} and claim_digests(h) == set()


def test_a_failed_build_releases_the_claim(h: Harness) -> None:
    h.engine.build_error = EngineError("the build failed: RUN exited 1")

    with pytest.raises(EngineError) as exc:
        h.run()

    assert exc.value.exit_code == ExitCode.ENGINE
    assert h.tags() == {} and claim_digests(h) == set() and h.engine.pushes == []


def test_a_claim_that_cannot_be_released_expires_and_the_publish_stands(h: Harness) -> None:
    h.registry.fail("delete_manifest", error=RegistryError("DELETE answered 500"))

    result = h.run()

    assert result.pushed
    assert set(h.tags()) == {TAG, CLAIM}
    assert any("could not remove" in line and "expires by itself" in line for line in h.log)


# -- the claim PUT failing ---------------------------------------------------------------------


def test_claim_put_answering_500_but_standing_as_ours_goes_on(h: Harness) -> None:
    def lost_answer(_reg: FakeRegistry, _call: Call) -> None:
        raise RegistryError("PUT answered 500")

    h.registry.on("put_manifest", CLAIM, after=True, do=lost_answer)

    result = h.run()

    assert result.pushed and h.tags() == {TAG: result.digest}
    assert len(h.registry.called("put_manifest", CLAIM)) == 1  # not written twice


def test_claim_put_answering_500_with_another_claim_standing_is_a_lost_race(h: Harness) -> None:
    theirs = sha256_digest(contender_claim(timedelta(0)))

    def contender_then_500(reg: FakeRegistry, _call: Call) -> None:
        reg.store(REPO, CLAIM, contender_claim(timedelta(0)), OCI_MANIFEST)
        raise RegistryError("PUT answered 500")

    h.registry.on("put_manifest", CLAIM, do=contender_then_500)

    with pytest.raises(RefusedError, match=r"claimed .* at the same time: nothing was pushed") as e:
        h.run()

    assert e.value.exit_code == ExitCode.REFUSED
    assert h.tags() == {CLAIM: theirs} and h.engine.builds == []


def test_claim_put_failing_then_succeeding_is_retried(h: Harness) -> None:
    h.registry.fail("put_manifest", CLAIM)

    result = h.run()

    assert result.pushed and h.tags() == {TAG: result.digest}
    assert len(h.registry.called("put_manifest", CLAIM)) == 2
    assert 0.1 <= h.sleeps[0] < 0.3  # the jittered pause between the attempts


def test_claim_put_failing_three_times_is_a_registry_error(h: Harness) -> None:
    h.registry.fail("put_manifest", CLAIM, times=3)

    with pytest.raises(RegistryError, match="answered 500") as exc:
        h.run()

    assert exc.value.exit_code == ExitCode.REGISTRY
    assert len(h.registry.called("put_manifest", CLAIM)) == 3
    assert len(h.sleeps) == 2 and h.tags() == {} and h.engine.builds == []


def test_claim_put_unreachable_is_not_retried(h: Harness) -> None:
    h.registry.fail("upload_blob", error=RegistryUnreachable("connection refused"))

    with pytest.raises(RegistryUnreachable) as exc:
        h.run()

    assert exc.value.exit_code == ExitCode.REGISTRY
    assert len(h.registry.called("upload_blob")) == 1 and h.sleeps == []
    assert h.tags() == {} and h.engine.builds == []


# -- step 6: verify ----------------------------------------------------------------------------


def test_overwrite_after_the_push_is_detected_with_both_digests(h: Harness) -> None:
    ours: list[str] = []
    theirs: list[str] = []

    def contender_overwrites() -> None:
        ours.append(h.tags()[TAG])
        theirs.append(h.registry.add_image(REPO, TAG, salt="contender"))

    h.engine.after_push = contender_overwrites

    with pytest.raises(OverwriteDetected) as exc:
        h.run(aliases=("latest", "main"))

    assert exc.value.exit_code == ExitCode.REFUSED
    assert f"should hold {ours[0]} just pushed, but holds {theirs[0]}" in str(exc.value)
    # Aliases move only after the verify: none was touched.
    assert h.tags() == {TAG: theirs[0]}
    assert claim_digests(h) == set()


def test_tag_gone_at_verify_is_an_overwrite(h: Harness) -> None:
    # Another client removed the tag alone (an OCI 1.1 DELETE by tag) right after the push.
    h.engine.after_push = lambda: h.registry.repo(REPO).tags.pop(TAG) and None

    with pytest.raises(OverwriteDetected, match="but holds nothing") as exc:
        h.run()
    assert exc.value.exit_code == ExitCode.REFUSED


# -- registries that cannot delete: no claim, re-verify after a settle time ----------------------


def test_without_deletes_no_claim_is_put_and_the_tag_is_verified_twice(
    h_nodelete: Harness,
) -> None:
    h = h_nodelete
    result = h.run()

    assert result.pushed and h.tags() == {TAG: result.digest}
    assert h.registry.called("put_manifest", CLAIM) == []
    assert h.registry.called("delete_manifest") == []
    assert any("cannot delete manifests" in line for line in h.log)
    # It slept (as long as the push took, at least 1 s), then looked again.
    assert h.sleeps == [1.0]
    assert len(h.registry.called("head_manifest", TAG)) == 4  # exists, pre-push, 2 verifies


@pytest.mark.parametrize(("push_seconds", "settle"), [(5.0, 5.0), (120.0, 30.0)])
def test_without_deletes_the_settle_time_is_as_long_as_the_push_up_to_30_s(
    h_nodelete: Harness, push_seconds: float, settle: float
) -> None:
    h = h_nodelete

    def slow_push() -> None:
        h.clock.now += push_seconds

    h.engine.after_push = slow_push

    result = h.run()

    assert result.pushed and h.sleeps == [settle]


def test_without_deletes_an_overwrite_during_the_settle_time_is_detected(
    h_nodelete: Harness,
) -> None:
    h = h_nodelete
    ours: list[str] = []
    theirs: list[str] = []

    def contender_pushes(_seconds: float) -> None:
        ours.append(h.tags()[TAG])
        theirs.append(h.registry.add_image(REPO, TAG, salt="contender"))

    h.on_sleep = contender_pushes

    with pytest.raises(OverwriteDetected) as exc:
        h.run(aliases=("latest",))

    assert exc.value.exit_code == ExitCode.REFUSED
    assert f"should hold {ours[0]} just pushed, but holds {theirs[0]}" in str(exc.value)
    assert h.tags() == {TAG: theirs[0]}  # no alias moved


def test_without_deletes_a_tag_appearing_while_building_is_refused(h_nodelete: Harness) -> None:
    h = h_nodelete
    theirs: list[str] = []
    h.engine.during_build = lambda: theirs.append(h.registry.add_image(REPO, TAG, salt="c"))

    with pytest.raises(TagExistsError) as exc:
        h.run()

    assert exc.value.exit_code == ExitCode.REFUSED
    assert h.engine.pushes == [] and h.tags() == {TAG: theirs[0]}


# -- the engine re-tagging our name during the push ---------------------------------------------


def test_engine_retag_during_push_pushes_again(h: Harness) -> None:
    h.engine.retag_during_push = 1

    result = h.run()

    assert result.pushed and result.digest is not None
    assert h.engine.pushes == [f"{IMAGE}:{TAG}"] * 2
    built = h.engine.builds[0]["tag"]
    assert h.config_digest(result.digest) == h.engine.names[f"{IMAGE}:{TAG}"]
    assert built in h.engine.untagged
    assert h.tags() == {TAG: result.digest}
    assert any("re-tagged on the engine during the push" in line for line in h.log)


def test_engine_retag_twice_is_an_engine_error(h: Harness) -> None:
    h.engine.retag_during_push = 2

    with pytest.raises(EngineError, match="keeps re-tagging") as exc:
        h.run()

    assert exc.value.exit_code == ExitCode.ENGINE
    assert len(h.engine.pushes) == 2 and claim_digests(h) == set()


# -- step 7: aliases ---------------------------------------------------------------------------


ALIASES = ("latest", "1", "1.4", "main")


def test_aliases_all_move_for_the_highest_release(h: Harness) -> None:
    h.registry.add_image(REPO, "1.4.2-3", salt="old")

    result = h.run(aliases=ALIASES)

    assert result.aliases == list(ALIASES)
    tags = h.tags()
    assert all(tags[a] == result.digest for a in ALIASES)


def test_a_backport_moves_its_own_line_but_not_latest(h: Harness) -> None:
    newer = h.registry.add_image(REPO, "2.0.0-1", salt="v2")
    h.registry.tag(REPO, "latest", newer)

    result = h.run(aliases=ALIASES)

    assert result.aliases == ["1", "1.4", "main"]
    tags = h.tags()
    assert tags["latest"] == newer
    assert tags["1"] == tags["1.4"] == tags["main"] == result.digest
    assert f"alias latest: not moved, {TAG} is not the highest release" in h.log


def test_a_pre_release_moves_only_non_version_aliases(h: Harness) -> None:
    pre = "2.1.0-rc.1-1"
    result = h.run(derivation(pre), aliases=("latest", "2", "2.1", "edge"))

    assert result.aliases == ["edge"]
    assert h.tags() == {pre: result.digest, "edge": result.digest}


def test_a_build_of_an_older_patch_holds_every_version_alias(h: Harness) -> None:
    h.registry.add_image(REPO, "1.4.9-1", salt="newer-patch")
    h.registry.add_image(REPO, "1.9.0-1", salt="newer-minor")

    result = h.run(aliases=("latest", "1", "1.4"))

    assert result.aliases == []
    assert set(h.tags()) == {TAG, "1.4.9-1", "1.9.0-1"}


# -- outputs -------------------------------------------------------------------------------------


def test_outputs_go_to_github_output_and_the_env_file(h: Harness, tmp_path: Path) -> None:
    result = h.run(aliases=("main",))
    gh, env_file = tmp_path / "github_output", tmp_path / "out.env"

    write_outputs(result, str(env_file), {"GITHUB_OUTPUT": str(gh)})

    assert gh.read_text() == f"image={IMAGE}\ntag={TAG}\ndigest={result.digest}\n"
    assert env_file.read_text() == (
        f"IMGTAG_IMAGE={IMAGE}\nIMGTAG_TAG={TAG}\nIMGTAG_DIGEST={result.digest}\n"
        "IMGTAG_ALIASES=main\nIMGTAG_PUSHED=true\n"
    )


# -- --sign: the final tag never stands unsigned -------------------------------------------


class FakeSigner:
    """Writes cosign's signature tag into the fake registry, recording what the registry
    held at that moment; ``bad_key`` and ``refused`` are the two ways signing fails."""

    def __init__(self, registry: FakeRegistry, *, bad_key: bool = False, refused: bool = False):
        self.registry = registry
        self.bad_key = bad_key
        self.refused = refused
        self.checked = 0
        self.signed: list[tuple[str, str, bool, dict[str, str]]] = []
        self.calls_before: int | None = None  # registry calls made before the signature

    def check(self) -> None:
        self.checked += 1
        if self.bad_key:
            raise UsageError("--sign-key k: cosign cannot use this key")

    def sign(self, image: str, digest: str, *, recursive: bool, progress: Any) -> None:
        self.signed.append((image, digest, recursive, dict(self.registry.tags(REPO))))
        self.calls_before = len(self.registry.calls)
        if self.refused:
            raise RegistryError("cosign could not sign: the final tag was not written")
        targets = [digest]
        if recursive:
            doc = self.registry.get_manifest(REPO, digest).json()
            targets += [m["digest"] for m in doc["manifests"]]
        for target in targets:
            self.registry.store(
                REPO, target.replace(":", "-") + ".sig", b'{"sig": "%s"}' % target.encode(),
                OCI_MANIFEST,
            )  # fmt: skip


def test_signed_publish_signs_the_digest_before_the_final_tag_exists(h: Harness) -> None:
    signer = FakeSigner(h.registry)
    result = h.run(signer=signer, aliases=("latest",))

    assert signer.checked == 1
    ((image, digest, recursive, held),) = signer.signed
    assert image == IMAGE and digest == result.digest and recursive is False
    assert TAG not in held, "the final tag did not exist while signing"
    stage = [t for t in held if t.startswith("imgtag-tmp-") and t.endswith("-signing")]
    assert len(stage) == 1 and held[stage[0]] == digest, "signed under the staging tag"
    sig = digest.replace(":", "-") + ".sig"
    assert result.signed is True and result.signatures == [sig]
    assert h.tags() == {TAG: digest, "latest": digest, sig: h.tags()[sig]}
    assert claim_digests(h) == set()
    # The final tag is one PUT of the staged bytes, after the signature.
    later = h.registry.calls[signer.calls_before or 0 :]
    puts = [c.ref for c in later if c.method == "put_manifest"]
    assert puts[0] == TAG and puts.index("latest") > 0
    assert len(h.registry.called("put_manifest", TAG)) == 1


def test_a_key_that_cannot_be_used_stops_before_any_claim(h: Harness) -> None:
    with pytest.raises(UsageError) as err:
        h.run(signer=FakeSigner(h.registry, bad_key=True))
    assert err.value.exit_code == ExitCode.USAGE
    assert h.writes() == [] and h.engine.builds == []


def test_a_signature_that_cannot_be_written_leaves_no_final_tag(h: Harness) -> None:
    with pytest.raises(RegistryError) as err:
        h.run(signer=FakeSigner(h.registry, refused=True))
    assert err.value.exit_code == ExitCode.REGISTRY
    assert h.tags() == {}, "no final tag, the staging tag and the claim removed"
    assert claim_digests(h) == set()


def test_a_signature_the_registry_does_not_show_is_not_trusted(h: Harness) -> None:
    class Silent(FakeSigner):
        def sign(self, image: str, digest: str, *, recursive: bool, progress: Any) -> None:
            self.signed.append((image, digest, recursive, {}))  # "succeeds", writes nothing

    with pytest.raises(RegistryError, match="not in the registry"):
        h.run(signer=Silent(h.registry))
    assert h.tags() == {}


def test_a_tag_written_while_signing_is_not_overwritten(h: Harness) -> None:
    class Racing(FakeSigner):
        def sign(self, image: str, digest: str, *, recursive: bool, progress: Any) -> None:
            super().sign(image, digest, recursive=recursive, progress=progress)
            self.registry.add_image(REPO, TAG, {"by": "another run"})

    with pytest.raises(TagExistsError, match="appeared while signing"):
        h.run(signer=Racing(h.registry))


def test_dry_run_with_sign_checks_the_key_and_writes_nothing(h: Harness) -> None:
    signer = FakeSigner(h.registry)
    h.run(signer=signer, dry_run=True)
    assert signer.checked == 1 and signer.signed == [] and h.writes() == []
    assert any("and sign it" in line for line in h.log)


class PushingBuilder(Builder):
    """A builder that pushes by building (buildx with a container driver): its result
    lands in the registry under the run's own temporary tag, never built locally."""

    name = "buildkit"
    capabilities = DockerBuilder.capabilities

    def __init__(self, registry: FakeRegistry) -> None:
        self.registry = registry
        self.pushed_to: list[str] = []

    def pushes_by_building(self, *, squash: bool) -> bool:
        return not squash

    def build_and_push(self, request: BuildRequest, name: str, progress: Any) -> Built:
        self.pushed_to.append(name)
        tag = name.rsplit(":", 1)[1]
        return Built(self.registry.add_image(REPO, tag, request.labels), name)

    def build(self, request: BuildRequest, progress: Any) -> list[Built]:
        raise AssertionError("a builder that pushes by building is not asked to build")

    def squash(self, image: Built, known_base: str | None, progress: Any) -> Any:
        raise AssertionError("not squashed")

    def push(self, image: Built, repository: str, tag: str, progress: Any) -> str:
        raise AssertionError("a builder that pushes by building is not asked to push")

    def discard(self, image: Built) -> None:
        pass


def _direct(h: Harness, signer: Any = None) -> tuple[PushingBuilder, BuildPushResult]:
    builder = PushingBuilder(h.registry)
    opts = BuildPushOptions(image=IMAGE, next=NextOptions(), lint=False)
    result = Publisher(
        opts,
        derive=derivation,
        client=h.registry,
        builder=builder,
        auth_config=lambda: None,
        remote_url=lambda: None,
        log=h.log.append,
        now=lambda: NOW,
        sleep=h.sleep,
        signer=signer,
    ).run()
    return builder, result


def test_direct_push_writes_the_final_tag_from_the_builders_temporary_tag(h: Harness) -> None:
    builder, result = _direct(h)
    (pushed,) = builder.pushed_to
    assert pushed.startswith(f"registry.example/{REPO}:imgtag-tmp-") and pushed.endswith("-build")
    assert result.signed is False and result.signatures == []
    assert h.tags() == {TAG: result.digest}, "the temporary tag and the claim are gone"


def test_signed_direct_push_signs_the_builders_digest_before_the_final_tag(h: Harness) -> None:
    signer = FakeSigner(h.registry)
    builder, result = _direct(h, signer)

    ((image, digest, recursive, held),) = signer.signed
    assert image == IMAGE and digest == result.digest and recursive is False
    assert TAG not in held, "the final tag did not exist while signing"
    (temp,) = [t for t in held if t.startswith("imgtag-tmp-")]
    assert temp.endswith("-build") and held[temp] == digest, "signed where buildx pushed"
    sig = digest.replace(":", "-") + ".sig"
    assert result.signed is True and result.signatures == [sig]
    assert h.tags() == {TAG: digest, sig: h.tags()[sig]}
    assert claim_digests(h) == set()
    # No second push under a staging tag: the final tag is one PUT after the signature
    # (then the temporary tag's placeholder, to remove it).
    assert builder.pushed_to == [f"registry.example/{REPO}:{temp}"]
    later = h.registry.calls[signer.calls_before or 0 :]
    assert [c.ref for c in later if c.method == "put_manifest"] == [TAG, temp]
    assert len(h.registry.called("put_manifest", TAG)) == 1


def test_signed_direct_push_refused_signature_leaves_no_final_tag(h: Harness) -> None:
    with pytest.raises(RegistryError):
        _direct(h, FakeSigner(h.registry, refused=True))
    assert h.tags() == {}, "no final tag; the builder's temporary tag and the claim removed"


def test_signed_direct_push_does_not_overwrite_a_tag_written_while_signing(h: Harness) -> None:
    class Racing(FakeSigner):
        def sign(self, image: str, digest: str, *, recursive: bool, progress: Any) -> None:
            super().sign(image, digest, recursive=recursive, progress=progress)
            self.registry.add_image(REPO, TAG, {"by": "another run"})

    with pytest.raises(TagExistsError, match=r"appeared while signing.*it was not overwritten"):
        _direct(h, Racing(h.registry))
    assert h.tags()[TAG] != "", "the other run's tag stands"
