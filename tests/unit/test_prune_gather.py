"""What prune reads from a registry (``tagger.prune.gather``), against a fake registry:
index children (nested too), untag placeholders, created times, missing signature subjects.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fakes import FakeRegistry
from tagger.prune.gather import gather, gather_referrers
from tagger.prune.plan import Policy, TagState
from tagger.registry.markers import marker_manifest
from tagger.registry.mediatypes import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST

REPO = "team/app"


def states_by_tag(states: list[TagState]) -> dict[str, TagState]:
    return {s.tag: s for s in states}


def test_index_children_nested_ones_too() -> None:
    reg = FakeRegistry()
    amd, arm = (reg.add_image(REPO, None, salt=s) for s in ("amd64", "arm64"))
    inner = reg.add_index(REPO, "1.0.0-1", [(amd, DOCKER_MANIFEST), (arm, DOCKER_MANIFEST)])
    outer = reg.add_index(REPO, "1.0.0-2", [(inner, OCI_INDEX)])
    single = reg.add_image(REPO, "1.0.0-3", salt="single")

    states, children, missing = gather(reg, REPO, Policy(), concurrency=4)

    assert children == {inner: frozenset({amd, arm}), outer: frozenset({inner})}
    by_tag = states_by_tag(states)
    assert by_tag["1.0.0-1"] == TagState("1.0.0-1", inner, None, True, False)
    assert by_tag["1.0.0-2"].is_index and not by_tag["1.0.0-3"].is_index
    assert by_tag["1.0.0-3"].digest == single
    assert missing == frozenset()


def test_placeholders_of_an_interrupted_untag_are_recognised() -> None:
    reg = FakeRegistry()
    reg.store(
        REPO,
        "1.0.0-1",
        marker_manifest({"org.imgtag.prune.untag": "1.0.0-1", "org.imgtag.prune.nonce": "n"}),
        OCI_MANIFEST,
    )
    reg.store(REPO, "imgtag-claim-x", marker_manifest({"org.imgtag.claim.tag": "1"}), OCI_MANIFEST)

    by_tag = states_by_tag(gather(reg, REPO, Policy(), concurrency=2)[0])

    assert by_tag["1.0.0-1"].placeholder and not by_tag["imgtag-claim-x"].placeholder


def test_created_times_are_read_only_when_a_rule_needs_them() -> None:
    reg = FakeRegistry()
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1", created="2026-05-01T12:00:00.123456789Z")
    reg.tag(REPO, "1.0.0-1-again", d1)
    reg.store(REPO, "1.0.0-2", marker_manifest({"a": "b"}), OCI_MANIFEST)  # no config blob
    reg.add_image(REPO, "1.0.0-3", salt="3", created="not a date")

    without = states_by_tag(gather(reg, REPO, Policy(), concurrency=2)[0])
    assert without["1.0.0-1"].created is None
    assert reg.called("get_manifest", d1) == []

    within = Policy(keep_within=timedelta(days=1))
    by_tag = states_by_tag(gather(reg, REPO, within, concurrency=2)[0])

    assert by_tag["1.0.0-1"].created == datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert by_tag["1.0.0-2"].created is None  # the registry has no config: unknown
    assert by_tag["1.0.0-3"].created is None
    assert len(reg.called("get_manifest", d1)) == 1  # once per digest, not per tag


def test_signatures_whose_subject_is_gone_are_reported() -> None:
    reg = FakeRegistry()
    subject = reg.add_image(REPO, "1.0.0-1", salt="1")
    child = reg.add_image(REPO, None, salt="child")
    reg.add_index(REPO, "1.0.0-2", [(child, DOCKER_MANIFEST)])
    gone = "sha256:" + "ab" * 32
    for digest, n in ((subject, 1), (child, 2), (gone, 3)):
        reg.add_image(REPO, digest.replace(":", "-") + ".sig", salt=f"sig-{n}")

    _, _, missing = gather(reg, REPO, Policy(), concurrency=2)

    assert missing == frozenset({gone})


def test_a_tag_deleted_between_the_list_and_its_head_is_left_out() -> None:
    reg = FakeRegistry()
    reg.add_image(REPO, "1.0.0-1", salt="1")
    doomed = reg.add_image(REPO, "1.0.0-2", salt="2")
    reg.on("list_tags", after=True, do=lambda r, _c: r.drop(REPO, doomed))

    states, _, _ = gather(reg, REPO, Policy(), concurrency=2)

    assert [s.tag for s in states] == ["1.0.0-1"]


def test_referrers_are_read_where_the_registry_has_the_api() -> None:
    reg = FakeRegistry(referrers_api=True)
    subject = reg.add_image(REPO, "1.0.0-1", salt="1")
    sbom = reg.add_referrer(REPO, subject, "application/spdx+json")
    signature = reg.add_referrer(REPO, sbom, "application/vnd.dev.cosign.artifact.sig.v1+json")
    states, children, _ = gather(reg, REPO, Policy(), concurrency=2)

    found = gather_referrers(reg, REPO, states, children, concurrency=2)

    assert found == {subject: frozenset({sbom}), sbom: frozenset({signature})}


def test_without_the_api_one_request_tells_and_nothing_more_is_asked() -> None:
    reg = FakeRegistry()
    for n in range(3):
        reg.add_image(REPO, f"1.0.0-{n}", salt=str(n))
    states, children, _ = gather(reg, REPO, Policy(), concurrency=2)

    assert gather_referrers(reg, REPO, states, children, concurrency=2) == {}
    assert len(reg.called("referrers")) == 1
