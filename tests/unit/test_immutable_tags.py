"""A registry's "this tag is immutable" answer is exit 3 in its own words, wherever the
write comes from: the registry API's status table (claims, aliases, an index, promote) and
the engine's push (build-push). Pure: the status map and the guard with the typed fakes.
"""

from __future__ import annotations

import json

import pytest
from test_publish_guard import Clock, Harness

from fakes import FakeRegistry
from tagger.errors import EngineError, ExitCode, ImmutableTag, RegistryError, UsageError
from tagger.registry.http import raise_for_status
from tagger.registry.immutable import immutable_words
from tagger.registry.transport import registry_service

ECR = (
    "The image tag '1.0.0-1' already exists in the 'team/app' repository and cannot be "
    "overwritten because the repository is immutable."
)


def errors_body(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (400, errors_body("TAG_INVALID", ECR), "cannot be overwritten because the repository"),
        (
            412,
            errors_body(
                "PRECONDITION",
                "Failed to process request due to 'team/app:1.0.0-1' configured as immutable.",
            ),
            "configured as immutable",
        ),
        (
            403,
            errors_body("DENIED", "tag 1.0.0-1 is immutable and cannot be overwritten"),
            "is immutable",
        ),
        (
            400,
            errors_body(
                "FAILED_PRECONDITION",
                "the repository has immutable tags enabled, so an existing tag",
            ),
            "immutable tags enabled",
        ),
    ],
    ids=["ecr", "harbor", "docker-hub-or-gitlab", "artifact-registry"],
)
def test_the_registry_api_refusal_of_an_immutable_tag_is_exit_3_in_its_words(
    status: int, body: bytes, words: str
) -> None:
    with pytest.raises(ImmutableTag) as caught:
        raise_for_status(
            status,
            body,
            "https://r.example/v2/team/app/manifests/1.0.0-1",
            "pushing the manifest r.example/team/app:1.0.0-1",
            registry_service("r.example"),
        )
    assert caught.value.exit_code == ExitCode.REFUSED
    assert str(caught.value).startswith("refused to publish: r.example keeps its tags immutable")
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, errors_body("MANIFEST_INVALID", "manifest invalid")),
        (403, errors_body("DENIED", "requested access to the resource is denied")),
        (412, b"<html>precondition</html>"),
    ],
)
def test_other_refusals_are_not_taken_for_immutable_tags(status: int, body: bytes) -> None:
    with pytest.raises(RegistryError) as caught:
        raise_for_status(status, body, "https://r.example/v2/", "pushing", registry_service("r"))
    assert not isinstance(caught.value, ImmutableTag)


def test_words_are_cleaned_and_an_existing_tag_alone_is_no_refusal() -> None:
    assert (
        immutable_words("tag invalid: \x1b[31mimmutable\x1b[0m")
        == "tag invalid:  [31mimmutable [0m"
    )
    # "already exists" is what a rival's tag says too: only the registry's rule is a refusal.
    assert immutable_words("manifest already exists") is None


# --- build-push's guard on a repository immutable server-side ------------------------------


@pytest.fixture
def h(monkeypatch: pytest.MonkeyPatch) -> Harness:
    """The guard's harness (tests/unit/test_publish_guard.py), its clock moved by hand."""
    from types import SimpleNamespace

    from tagger.build import publish

    clock = Clock()

    def no_real_sleep(seconds: float) -> None:
        raise AssertionError(f"publish.py slept {seconds} s for real")

    monkeypatch.setattr(
        publish, "time", SimpleNamespace(monotonic=clock.monotonic, sleep=no_real_sleep)
    )
    return Harness(clock)


def test_an_immutable_repository_gets_no_claim_and_the_registry_guards_the_push(h: Harness) -> None:
    h.registry.immutable = "the ECR repository r/team/app keeps its tags immutable"
    result = h.run()
    assert result.pushed
    written = {c.ref for c in h.writes() if c.method == "put_manifest"}
    assert not any(str(ref).startswith("imgtag-") for ref in written)  # no claim, no temp tag
    assert h.registry.called("can_delete") == []
    assert not any(s >= 1.0 for s in h.sleeps)  # no settle-and-reverify wait either
    assert any("immutable" in line for line in h.log)


def test_an_engine_push_refused_as_immutable_is_exit_3_and_leaves_nothing(h: Harness) -> None:
    h.engine.push_error = EngineError(f"the push of r/team/app:1.4.3-1 failed: tag invalid: {ECR}")
    with pytest.raises(ImmutableTag) as caught:
        h.run()
    assert caught.value.exit_code == ExitCode.REFUSED
    assert str(caught.value).startswith("refused to publish registry.example/team/app:1.4.3-1")
    assert "because the repository is immutable" in str(caught.value)
    assert h.tags() == {}  # the claim was released: nothing left behind


def test_an_engine_failure_that_says_nothing_of_immutability_stays_exit_6(h: Harness) -> None:
    h.engine.push_error = EngineError("the push of r/team/app:1.4.3-1 failed: blob upload unknown")
    with pytest.raises(EngineError) as caught:
        h.run()
    assert caught.value.exit_code == ExitCode.ENGINE


def test_a_multi_platform_build_on_an_immutable_repository_is_refused_up_front(h: Harness) -> None:
    h.registry.immutable = "the ECR repository r/team/app keeps its tags immutable"
    from tagger.registry.platform import Platform

    two = (Platform.parse("linux/amd64"), Platform.parse("linux/arm64"))
    from tagger.build.builders.docker import DockerBuilder

    class ManyPlatforms(DockerBuilder):
        """The fake engine's builder, taking several platforms as buildkit does."""

        def check(self, request: object) -> None:
            pass

    publisher = h.publisher(platforms=two)
    publisher._builder = ManyPlatforms(h.engine, lambda: {})
    with pytest.raises(UsageError, match="writes no temporary tag there"):
        publisher.run()
    assert h.writes() == []


def test_an_alias_the_registry_will_not_move_stays_and_the_version_is_published(h: Harness) -> None:
    registry: FakeRegistry = h.registry
    registry.add_image("team/app", "latest", salt="older")
    registry.immutable = "immutable"
    result = h.run(aliases=("latest",))
    assert result.pushed and result.aliases == []
    assert any(line.startswith("alias latest: not moved") for line in h.log)
