"""prune's executor (``tagger.prune.execute.apply``) and ``run_prune``'s result (exit 5,
the plan table, the summary), against the typed fake registry: the re-check before each
removal, untag with and without OCI 1.1 tag deletes, failures as outcomes, signatures
before their subjects.

Each test asserts the outcomes a user sees in the plan table and the tags and digests the
registry holds afterwards. tests/integration runs the same against Distribution.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from fakes import Call, FakeRegistry
from tagger.errors import ExitCode, NotFound, PolicyError, RegistryError
from tagger.lifecycle import Stop
from tagger.prune import report
from tagger.prune.execute import Outcome, apply
from tagger.prune.plan import DELETE, KEEP, SKIP, UNTAG, Action, Policy
from tagger.prune.run import PruneResult, PruneSettings, run_prune
from tagger.registry.reference import Reference

REPO = "team/app"
IMAGE = "registry.example/team/app"


def act(
    tag: str, digest: str, action: str, reason: str = "planned", subject: str | None = None
) -> Action:
    return Action(tag, digest, None, action, reason, subject)


def run(
    registry: FakeRegistry, actions: list[Action], concurrency: int = 4
) -> tuple[list[Outcome], list[str]]:
    nonces: list[str] = []

    def unique() -> str:
        nonces.append(f"nonce-{len(nonces)}")
        return nonces[-1]

    return apply(registry, REPO, actions, concurrency, unique), nonces


def by_tag(outcomes: list[Outcome]) -> dict[str, tuple[str, bool, str, str]]:
    """tag -> (action, ok, detail, reason), as the plan table shows them."""
    return {o.action.tag: (o.action.action, o.ok, o.detail, o.action.reason) for o in outcomes}


@pytest.fixture
def reg() -> FakeRegistry:
    return FakeRegistry()


# -- deletes ---------------------------------------------------------------------------------


def test_delete_removes_the_digest_after_rechecking_every_tag_on_it(reg: FakeRegistry) -> None:
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    reg.tag(REPO, "old", d1)
    d2 = reg.add_image(REPO, "1.0.0-2", salt="2")
    d3 = reg.add_image(REPO, "1.0.0-3", salt="3")
    actions = [
        act("1.0.0-1", d1, DELETE),
        act("old", d1, DELETE),
        act("1.0.0-2", d2, DELETE),
        act("1.0.0-3", d3, KEEP),
    ]

    outcomes, _ = run(reg, actions)

    assert by_tag(outcomes) == {
        "1.0.0-1": (DELETE, True, "", "planned"),
        "old": (DELETE, True, "", "planned"),
        "1.0.0-2": (DELETE, True, "", "planned"),
    }
    assert reg.tags(REPO) == {"1.0.0-3": d3}
    assert not reg.has_manifest(REPO, d1) and not reg.has_manifest(REPO, d2)
    # Every doomed tag was looked at again, and each digest deleted once.
    for tag in ("1.0.0-1", "old", "1.0.0-2"):
        assert reg.called("head_manifest", tag)
    assert sorted(c.ref or "" for c in reg.called("delete_manifest")) == sorted([d1, d2])


def test_a_tag_moved_since_planning_saves_its_whole_digest(reg: FakeRegistry) -> None:
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    reg.tag(REPO, "old", d1)
    d9 = reg.add_image(REPO, None, salt="re-pushed")
    reg.tag(REPO, "old", d9)  # pushed again since the plan was made

    outcomes, _ = run(reg, [act("1.0.0-1", d1, DELETE), act("old", d1, DELETE)])

    assert by_tag(outcomes) == {
        "1.0.0-1": (SKIP, True, "", "changed since planning"),
        "old": (SKIP, True, "", "changed since planning"),
    }
    assert reg.tags(REPO) == {"1.0.0-1": d1, "old": d9}
    assert reg.called("delete_manifest") == []


def test_a_kept_tag_now_on_a_doomed_digest_saves_it(reg: FakeRegistry) -> None:
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    d2 = reg.add_image(REPO, "1.0.0-2", salt="2")
    reg.tag(REPO, "latest", d1)  # rolled back to 1.0.0-1 since the plan was made

    outcomes, _ = run(
        reg, [act("1.0.0-1", d1, DELETE), act("1.0.0-2", d2, KEEP), act("latest", d2, KEEP)]
    )

    assert by_tag(outcomes) == {"1.0.0-1": (SKIP, True, "", "a kept tag points at it now")}
    assert reg.tags(REPO) == {"1.0.0-1": d1, "1.0.0-2": d2, "latest": d1}


def test_a_tag_made_since_planning_on_a_doomed_digest_saves_it(reg: FakeRegistry) -> None:
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    d2 = reg.add_image(REPO, "1.0.0-2", salt="2")
    # Not in the plan: pushed since (a rollback tag, or a reproducible rebuild's new tag).
    reg.tag(REPO, "rollback", d1)

    outcomes, _ = run(reg, [act("1.0.0-1", d1, DELETE), act("1.0.0-2", d2, KEEP)])

    assert by_tag(outcomes) == {
        "1.0.0-1": (SKIP, True, "", "a tag made since planning points at it")
    }
    assert reg.tags(REPO) == {"1.0.0-1": d1, "1.0.0-2": d2, "rollback": d1}


def test_a_failed_tag_list_before_the_deletes_fails_them(reg: FakeRegistry) -> None:
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    reg.fail("list_tags", error=RegistryError("tag list answered 500"))

    outcomes, _ = run(reg, [act("1.0.0-1", d1, DELETE)])

    assert by_tag(outcomes) == {"1.0.0-1": (DELETE, False, "tag list answered 500", "planned")}
    assert reg.tags(REPO) == {"1.0.0-1": d1}


def test_a_digest_deleted_by_someone_else_is_already_gone(reg: FakeRegistry) -> None:
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    reg.add_image(REPO, "1.0.0-2", salt="2")
    # Another prune deletes it between our re-check and our DELETE.
    reg.on("delete_manifest", d1, do=lambda r, _c: r.drop(REPO, d1))

    outcomes, _ = run(reg, [act("1.0.0-1", d1, DELETE)])

    assert by_tag(outcomes) == {"1.0.0-1": (DELETE, True, "already gone", "planned")}
    assert set(reg.tags(REPO)) == {"1.0.0-2"}


def test_a_failed_delete_is_a_failed_outcome_and_the_others_go_on(reg: FakeRegistry) -> None:
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    d2 = reg.add_image(REPO, "1.0.0-2", salt="2")
    d3 = reg.add_image(REPO, "1.0.0-3", salt="3")
    reg.fail("delete_manifest", d1, RegistryError("DELETE answered 500 Internal Server Error"))

    outcomes, _ = run(reg, [act("1.0.0-1", d1, DELETE), act("1.0.0-2", d2, DELETE)])

    assert by_tag(outcomes) == {
        "1.0.0-1": (DELETE, False, "DELETE answered 500 Internal Server Error", "planned"),
        "1.0.0-2": (DELETE, True, "", "planned"),
    }
    assert reg.tags(REPO) == {"1.0.0-1": d1, "1.0.0-3": d3}


def test_signatures_are_deleted_before_the_images_they_sign(reg: FakeRegistry) -> None:
    subjects = [reg.add_image(REPO, f"1.0.0-{n}", salt=str(n)) for n in (1, 2, 3)]
    actions = [act(f"1.0.0-{n}", d, DELETE) for n, d in zip((1, 2, 3), subjects, strict=True)]
    for n, subject in enumerate(subjects, 1):
        sig_tag = subject.replace(":", "-") + ".sig"
        sig = reg.add_image(REPO, sig_tag, salt=f"sig-{n}")
        actions.append(act(sig_tag, sig, DELETE, subject=subject))  # planned after its subject

    outcomes, _ = run(reg, actions, concurrency=8)

    assert all(o.ok for o in outcomes) and len(outcomes) == 6
    deleted = [c.ref for c in reg.called("delete_manifest")]
    first_subject = min(deleted.index(d) for d in subjects)
    assert len(deleted) == 6 and all(deleted.index(c) < first_subject for c in deleted[:3])
    assert set(deleted[:3]).isdisjoint(subjects)
    assert reg.tags(REPO) == {}


# -- untags ----------------------------------------------------------------------------------


def test_untag_by_oci_tag_delete_leaves_the_digest_to_its_sibling() -> None:
    reg = FakeRegistry(tag_delete=True)
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    reg.tag(REPO, "stable", d1)

    outcomes, nonces = run(reg, [act("1.0.0-1", d1, UNTAG), act("stable", d1, KEEP)])

    assert by_tag(outcomes) == {"1.0.0-1": (UNTAG, True, "", "planned")}
    assert reg.tags(REPO) == {"stable": d1}
    assert reg.called("put_manifest") == [] and nonces == []


def test_untag_without_tag_delete_goes_through_a_unique_placeholder(reg: FakeRegistry) -> None:
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    reg.tag(REPO, "stable", d1)
    before = set(reg.repo(REPO).manifests)

    outcomes, nonces = run(reg, [act("1.0.0-1", d1, UNTAG), act("stable", d1, KEEP)])

    assert by_tag(outcomes) == {"1.0.0-1": (UNTAG, True, "via a placeholder", "planned")}
    assert reg.tags(REPO) == {"stable": d1}  # the sibling keeps its digest
    assert set(reg.repo(REPO).manifests) == before  # the placeholder is gone again
    assert nonces == ["nonce-0"]
    (put,) = reg.called("put_manifest")
    assert put == Call("put_manifest", REPO, "1.0.0-1")
    # The first DELETE was by tag (refused), the second by the placeholder's own digest.
    deletes = [c.ref or "" for c in reg.called("delete_manifest")]
    assert deletes[0] == "1.0.0-1" and deletes[1].startswith("sha256:") and deletes[1] != d1


def test_untag_falls_back_when_a_tag_delete_answers_404() -> None:
    reg = FakeRegistry(tag_delete=True)
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    reg.tag(REPO, "stable", d1)
    reg.fail("delete_manifest", "1.0.0-1", NotFound("manifest unknown"))

    outcomes, _ = run(reg, [act("1.0.0-1", d1, UNTAG)])

    assert by_tag(outcomes) == {"1.0.0-1": (UNTAG, True, "via a placeholder", "planned")}
    assert reg.tags(REPO) == {"stable": d1}


def test_untag_of_a_moved_or_vanished_tag_touches_nothing(reg: FakeRegistry) -> None:
    d1 = reg.add_image(REPO, "stable", salt="1")
    d2 = reg.add_image(REPO, "1.0.0-2", salt="2")

    outcomes, _ = run(reg, [act("1.0.0-2", d1, UNTAG), act("1.0.0-9", d1, UNTAG)])

    assert by_tag(outcomes) == {
        "1.0.0-2": (SKIP, True, "", "changed since planning"),
        "1.0.0-9": (UNTAG, True, "already gone", "planned"),
    }
    assert reg.tags(REPO) == {"stable": d1, "1.0.0-2": d2}
    assert reg.called("put_manifest") == []


def test_a_failed_placeholder_push_is_a_failed_untag(reg: FakeRegistry) -> None:
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    reg.tag(REPO, "stable", d1)
    reg.fail("put_manifest", "1.0.0-1", RegistryError("PUT answered 500"))

    outcomes, _ = run(reg, [act("1.0.0-1", d1, UNTAG)])

    assert by_tag(outcomes) == {"1.0.0-1": (UNTAG, False, "PUT answered 500", "planned")}
    assert reg.tags(REPO) == {"1.0.0-1": d1, "stable": d1}


def test_a_failed_placeholder_config_upload_fails_every_untag_but_not_deletes(
    reg: FakeRegistry,
) -> None:
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    reg.tag(REPO, "stable", d1)
    d2 = reg.add_image(REPO, "1.0.0-2", salt="2")
    reg.fail("upload_blob", error=RegistryError("blob upload answered 500"))

    outcomes, _ = run(reg, [act("1.0.0-1", d1, UNTAG), act("1.0.0-2", d2, DELETE)])

    assert by_tag(outcomes) == {
        "1.0.0-1": (UNTAG, False, "blob upload answered 500", "planned"),
        "1.0.0-2": (DELETE, True, "", "planned"),
    }
    assert reg.tags(REPO) == {"1.0.0-1": d1, "stable": d1}


# -- registries that cannot delete -----------------------------------------------------------


def test_a_registry_that_cannot_delete_fails_every_removal_with_the_reason() -> None:
    reg = FakeRegistry(deletes=False)
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    reg.tag(REPO, "stable", d1)
    d2 = reg.add_image(REPO, "1.0.0-2", salt="2")
    before = reg.tags(REPO)

    outcomes, _ = run(
        reg, [act("1.0.0-1", d1, UNTAG), act("1.0.0-2", d2, DELETE), act("stable", d1, KEEP)]
    )

    assert {o.action.tag for o in outcomes} == {"1.0.0-1", "1.0.0-2"}
    assert all(not o.ok and "storage.delete.enabled" in o.detail for o in outcomes)
    assert reg.tags(REPO) == before


def test_a_registry_failing_the_delete_probe_fails_every_removal(reg: FakeRegistry) -> None:
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    reg.fail("can_delete", error=RegistryError("DELETE answered 503"))

    outcomes, _ = run(reg, [act("1.0.0-1", d1, DELETE)])

    assert by_tag(outcomes) == {"1.0.0-1": (DELETE, False, "DELETE answered 503", "planned")}
    assert reg.tags(REPO) == {"1.0.0-1": d1}


def test_a_plan_without_removals_asks_nothing(reg: FakeRegistry) -> None:
    d1 = reg.add_image(REPO, "1.0.0-1", salt="1")
    assert run(reg, [act("1.0.0-1", d1, KEEP), act("x", d1, SKIP)])[0] == []
    assert reg.calls == []


# -- run_prune: the result, the plan table, the summary, exit 5 --------------------------------


@pytest.fixture
def four_builds(reg: FakeRegistry) -> list[str]:
    """1.0.0-1 .. 1.0.0-4 in the fake, which ``run_prune`` is handed as the registry."""
    return [reg.add_image(REPO, f"1.0.0-{n}", salt=str(n)) for n in range(1, 5)]


def settings(**policy: object) -> PruneSettings:
    return PruneSettings(Policy(keep_last=1, **policy), concurrency=2)  # type: ignore[arg-type]


def prune(reg: FakeRegistry, prune_settings: PruneSettings, *, apply: bool) -> PruneResult:
    ref = Reference.parse_repository(IMAGE)
    return run_prune(
        [ref], {ref.registry: reg}, prune_settings, apply=apply, stop=Stop(raising=True)
    )


def test_run_prune_exits_5_naming_each_failed_removal(
    reg: FakeRegistry, four_builds: list[str]
) -> None:
    reg.fail("delete_manifest", four_builds[1], RegistryError("DELETE answered 500"))

    result = prune(reg, settings(), apply=True)

    error = result.outcome_error()
    assert isinstance(error, RegistryError) and error.exit_code == ExitCode.REGISTRY
    assert "1 of 3 removals failed" in str(error)
    assert report.failures(result) == [f"failed: {IMAGE}:1.0.0-2: DELETE answered 500"]
    text = report.render_text(result)
    assert "keep 1, delete 3, untag 0, skip 0, failed 1" in text
    assert "[failed: DELETE answered 500]" in text
    assert reg.tags(REPO) == {"1.0.0-2": four_builds[1], "1.0.0-4": four_builds[3]}


def test_run_prune_applies_and_exits_0(reg: FakeRegistry, four_builds: list[str]) -> None:
    result = prune(reg, settings(), apply=True)

    assert result.outcome_error() is None
    doc = json.loads(report.render_json(result))
    assert doc["summary"] == {"keep": 1, "delete": 3, "untag": 0, "skip": 0, "failed": 0}
    assert {r["tag"]: r["result"] for r in doc["plan"] if "result" in r} == {
        f"1.0.0-{n}": "ok" for n in (1, 2, 3)
    }
    assert reg.tags(REPO) == {"1.0.0-4": four_builds[3]}


def test_run_prune_dry_run_deletes_nothing(reg: FakeRegistry, four_builds: list[str]) -> None:
    result = prune(reg, settings(), apply=False)

    assert result.outcome_error() is None
    assert "(dry run: nothing deleted; pass --apply)" in report.render_text(result)
    assert len(reg.tags(REPO)) == 4 and reg.called("delete_manifest") == []


def test_run_prune_over_max_delete_is_exit_1_before_any_removal(
    reg: FakeRegistry, four_builds: list[str]
) -> None:
    result = prune(reg, settings(max_delete=2), apply=True)

    error = result.outcome_error()
    assert isinstance(error, PolicyError) and "more than --max-delete 2" in str(error)
    assert error.exit_code == ExitCode.POLICY
    assert len(reg.tags(REPO)) == 4 and reg.called("delete_manifest") == []
    text = report.render_text(result)
    assert "1.0.0-1" in text  # the plan is shown
    assert "dry run" not in text and "all done" not in text  # and no summary claims a run


def test_run_prune_stopped_while_applying_finishes_in_flight_and_names_the_signal(
    reg: FakeRegistry, four_builds: list[str]
) -> None:
    import signal

    ref = Reference.parse_repository(IMAGE)
    stop = Stop(raising=True)
    # SIGTERM lands while the first removal (the highest doomed build) is deleting.
    reg.on("delete_manifest", four_builds[2], do=lambda _r, _c: stop.request(signal.SIGTERM))
    one_at_a_time = PruneSettings(Policy(keep_last=1), concurrency=1)

    result = run_prune([ref], {ref.registry: reg}, one_at_a_time, apply=True, stop=stop)

    error = result.outcome_error()
    assert error is not None and error.exit_code == ExitCode.TERMINATED
    assert report.render_text(result).count("not started: stopped by SIGTERM") == 2
    assert reg.tags(REPO) == {
        t: four_builds[n - 1] for n, t in ((1, "1.0.0-1"), (2, "1.0.0-2"), (4, "1.0.0-4"))
    }


def test_run_prune_keep_within_reads_created_times(reg: FakeRegistry) -> None:
    old = reg.add_image(REPO, "1.0.0-1", salt="1", created="2001-01-01T00:00:00Z")
    young = reg.add_image(REPO, "1.0.0-2", salt="2", created="2999-01-01T00:00:00.123456789Z")
    newest = reg.add_image(REPO, "1.0.0-3", salt="3", created="2001-01-02T00:00:00Z")

    result = prune(reg, settings(keep_within=timedelta(days=30)), apply=True)

    assert result.outcome_error() is None
    # 1.0.0-2's date lies in the future: untrustworthy, so the rule keeps it; 1.0.0-3 is
    # the highest build.
    assert reg.tags(REPO) == {"1.0.0-2": young, "1.0.0-3": newest}
    assert not reg.has_manifest(REPO, old)


def test_an_image_whose_signature_could_not_go_stays_with_it(reg: FakeRegistry) -> None:
    subject = reg.add_image(REPO, "1.0.0-1", salt="1")
    sig_tag = subject.replace(":", "-") + ".sig"
    sig = reg.add_image(REPO, sig_tag, salt="sig")
    reg.fail("delete_manifest", sig, RegistryError("DELETE answered 503"))
    actions = [act("1.0.0-1", subject, DELETE), act(sig_tag, sig, DELETE, subject=subject)]

    outcomes, _ = run(reg, actions)

    assert by_tag(outcomes)[sig_tag][:2] == (DELETE, False)
    assert by_tag(outcomes)["1.0.0-1"][:2] == (SKIP, True)
    assert "could not be removed" in by_tag(outcomes)["1.0.0-1"][3]
    assert reg.tags(REPO) == {"1.0.0-1": subject, sig_tag: sig}, "nothing is stranded"


def test_untagged_referrers_go_by_digest_before_their_subject(reg: FakeRegistry) -> None:
    subject = reg.add_image(REPO, "1.0.0-1", salt="1")
    referrer = reg.add_referrer(REPO, subject, "application/spdx+json")
    actions = [act("1.0.0-1", subject, DELETE), act("", referrer, DELETE, subject=subject)]

    outcomes, _ = run(reg, actions)

    assert all(o.ok for o in outcomes)
    assert [c.ref for c in reg.called("delete_manifest")] == [referrer, subject]
    assert not reg.has_manifest(REPO, referrer)
