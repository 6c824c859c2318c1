"""The pure prune planner, ``tagger.prune.plan``: every rule of docs/prune.md,
each with cases it must catch and cases it must leave alone, then invariants over a few
hundred random repositories (seeded ``random``: the same cases on every run).

No I/O: states are built by hand, ``now`` is fixed.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tagger.errors import UsageError
from tagger.prune.plan import (
    DEFAULT_MATCH,
    DELETE,
    KEEP,
    UNTAG,
    Action,
    Policy,
    TagState,
    compile_regex,
    parse_duration,
    plan,
    removals,
)
from tagger.version.grammar import ImageVersion

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SIGNATURE = re.compile(r"^sha256-([0-9a-f]{64})\.(sig|att|sbom)$")


def dg(name: str) -> str:
    """A digest named by a short word, so that tests can say "the digest of A"."""
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def sig(subject: str, kind: str = "sig") -> str:
    """cosign's tag for a signature/attestation/SBOM of the manifest ``subject``."""
    return f"sha256-{subject.removeprefix('sha256:')}.{kind}"


def st(
    tag: str, digest: str | None = None, created: datetime | None = None, *, index: bool = False
) -> TagState:
    return TagState(tag, digest or dg(tag), created, index)


def policy(
    keep_last: int = 0,
    keep_per_version: int = 0,
    keep_within: str | None = None,
    keep: Sequence[str] = (),
    match: str | None = None,
) -> Policy:
    """A policy that keeps nothing unless told: each test names the rules it exercises."""
    return Policy(
        keep_last=keep_last,
        keep_per_version=keep_per_version,
        keep_within=parse_duration(keep_within) if keep_within else None,
        keep=tuple(re.compile(p) for p in keep),
        match=re.compile(match or DEFAULT_MATCH),
    )


def run(
    states: Sequence[TagState],
    pol: Policy,
    children: Mapping[str, frozenset[str]] | None = None,
) -> dict[str, Action]:
    """Plan, check what every plan must satisfy, and index the actions by tag."""
    actions = plan(states, pol, NOW, children)
    assert sorted(a.tag for a in actions) == sorted(s.tag for s in states), "one action per tag"
    by_tag = {s.tag: s for s in states}
    for a in actions:
        assert a.action in (KEEP, DELETE, UNTAG), a
        assert a.reason.strip(), f"{a.tag}: every action has a reason"
        assert a.digest == by_tag[a.tag].digest
        assert a.created == by_tag[a.tag].created
    return {a.tag: a for a in actions}


def kinds(actions: Mapping[str, Action]) -> dict[str, str]:
    return {tag: a.action for tag, a in actions.items()}


def kept(actions: Mapping[str, Action]) -> set[str]:
    return {tag for tag, a in actions.items() if a.action == KEEP}


# --- --match: the candidates --------------------------------------------------------------

NOT_IMAGE_VERSIONS = [
    "latest",
    "1.4",
    "1",
    "1.2.3",  # no N
    "v1.2.3-4",  # a git tag's prefix is not in image tags
    "01.2.3-4",  # leading zero
    "1.02.3-4",
    "1.2.3-",
    "1.2.3-rc.1",  # PRE without N
    "main",
    "main-3f2a1bc",
    "pr-17",
    "1.2.3_4",
]


@pytest.mark.parametrize("other", NOT_IMAGE_VERSIONS)
def test_tags_outside_the_default_match_are_never_touched(other: str) -> None:
    states = [st(other), st("1.0.0-1"), st("1.0.0-2"), st("2.0.0-1")]
    actions = run(states, policy())
    assert actions[other].action == KEEP
    assert "match" in actions[other].reason
    # The candidates are pruned as if the other tag were not there.
    assert kinds(actions) == {other: KEEP, "2.0.0-1": KEEP, "1.0.0-2": DELETE, "1.0.0-1": DELETE}


@pytest.mark.parametrize(
    "tag",
    ["0.0.0-0", "1.4.2-17", "2.0.0-rc.1-3", "1.4.2-20261127221500", "1.0.0-beta.2.x-7",
     "10.20.30-1", "1.0.0-0a-1"],
)  # fmt: skip
def test_the_default_match_is_the_tag_grammar(tag: str) -> None:
    # Two candidates: the higher survives as the last candidate, the other is deleted.
    states = [st(tag), st("999.0.0-1")]
    assert kinds(run(states, policy())) == {tag: DELETE, "999.0.0-1": KEEP}


def test_a_custom_match_makes_only_its_tags_candidates() -> None:
    old = NOW - timedelta(days=90)
    states = [
        st("pr-1", created=old),
        st("pr-2", created=old + timedelta(days=1)),
        st("pr-3", created=old + timedelta(days=2)),
        st("1.0.0-1"),
        st("1.0.0-2"),
        st("latest"),
        st("pr-x"),  # not matched by the custom regex either
    ]
    actions = run(states, policy(keep_last=1, match=r"^pr-\d+$"))
    assert kinds(actions) == {
        # Outside the grammar, "highest" is the newest.
        "pr-3": KEEP,
        "pr-2": DELETE,
        "pr-1": DELETE,
        # Image versions are no candidates any more, even though nothing keeps them.
        "1.0.0-1": KEEP,
        "1.0.0-2": KEEP,
        "latest": KEEP,
        "pr-x": KEEP,
    }


def test_no_candidates_is_a_plan_that_keeps_everything() -> None:
    states = [st("latest"), st("main"), st("1.2")]
    actions = run(states, policy())
    assert set(kinds(actions).values()) == {KEEP}
    assert removals(actions.values()) == 0
    assert run([], policy()) == {}


# --- keep-last and the ordering of the contract ---------------------------------------

# Highest first, by the contract: X, Y, Z numerically; a release after its pre-releases;
# PRE by semver precedence (numeric identifiers as integers); N as an integer.
ORDERED = [
    "2.0.0-2",
    "2.0.0-1",
    "2.0.0-rc.10-1",
    "2.0.0-rc.9-4",
    "2.0.0-rc.2-1",
    "2.0.0-beta.1-7",
    "2.0.0-alpha-3",
    "1.10.0-1",
    "1.9.0-100",
    "1.9.0-99",
    "1.9.0-10",
    "1.9.0-9",
    "1.2.3-20261127221500",
    "1.2.3-2",
]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, len(ORDERED)])
def test_keep_last_keeps_the_n_highest_by_the_contracts_order(n: int) -> None:
    # Created dates run against the version order: they must not decide it.
    rng = random.Random(n)
    shuffled = rng.sample(ORDERED, len(ORDERED))
    states = [st(t, created=NOW - timedelta(days=len(ORDERED) - i)) for i, t in enumerate(ORDERED)]
    states = sorted(states, key=lambda s: shuffled.index(s.tag))
    actions = run(states, policy(keep_last=n))
    assert kept(actions) == set(ORDERED[:n])
    for tag in ORDERED[n:]:
        assert actions[tag].action == DELETE
    for tag in ORDERED[:n]:
        assert "keep-last" in actions[tag].reason


@pytest.mark.parametrize(
    ("higher", "lower"),
    [
        ("1.10.0-1", "1.9.0-1"),  # not as strings
        ("1.2.10-1", "1.2.9-1"),
        ("10.0.0-1", "9.99.99-99"),
        ("1.2.3-10", "1.2.3-9"),  # N as an integer
        ("1.2.3-100", "1.2.3-99"),
        ("1.2.3-1", "1.2.3-rc.1-99"),  # a release after its pre-releases (semver disagrees)
        ("1.2.3-1", "1.2.3-rc.99-1"),
        ("1.2.3-rc.10-1", "1.2.3-rc.9-1"),  # numeric identifiers as integers
        ("1.2.3-rc.1-1", "1.2.3-beta.9-1"),
        ("1.2.3-beta-1", "1.2.3-alpha.9-1"),
        ("1.2.3-alpha.1-1", "1.2.3-alpha-1"),  # a longer list after its prefix
        ("1.2.3-alpha.beta-1", "1.2.3-alpha.1-1"),  # alphanumeric after numeric
        ("1.2.4-rc.1-1", "1.2.3-1"),
    ],
)
def test_keep_last_1_keeps_the_higher_of_two(higher: str, lower: str) -> None:
    for states in ([st(higher), st(lower)], [st(lower), st(higher)]):
        actions = run(states, policy(keep_last=1))
        assert kinds(actions) == {higher: KEEP, lower: DELETE}
        assert "keep-last" in actions[higher].reason


def test_keep_last_larger_than_the_candidates_keeps_them_all() -> None:
    states = [st(t) for t in ORDERED] + [st("latest")]
    assert kept(run(states, policy(keep_last=100))) == {*ORDERED, "latest"}


# --- keep-per-version -------------------------------------------------------------------

PER_VERSION = [
    "1.0.0-1",
    "1.0.0-2",
    "1.0.0-10",
    "1.1.0-1",
    "1.1.0-rc.1-3",
    "1.1.0-rc.1-4",
    "1.1.0-rc.2-1",
    "2.0.0-5",
]


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, {"1.0.0-10", "1.1.0-1", "1.1.0-rc.1-4", "1.1.0-rc.2-1", "2.0.0-5"}),
        (2, {"1.0.0-10", "1.0.0-2", "1.1.0-1", "1.1.0-rc.1-4", "1.1.0-rc.1-3", "1.1.0-rc.2-1",
             "2.0.0-5"}),
        (3, set(PER_VERSION)),
    ],
)  # fmt: skip
def test_keep_per_version_keeps_the_n_highest_builds_of_each_x_y_z_pre(
    n: int, expected: set[str]
) -> None:
    # Each X.Y.Z[-PRE] is its own group: 1.1.0, 1.1.0-rc.1 and 1.1.0-rc.2 are three.
    actions = run([st(t) for t in PER_VERSION], policy(keep_per_version=n))
    assert kept(actions) == expected
    for tag in expected:
        assert "keep-per-version" in actions[tag].reason


def test_keep_per_version_0_keeps_only_by_other_rules() -> None:
    actions = run([st(t) for t in PER_VERSION], policy(keep_per_version=0, keep_last=2))
    assert kept(actions) == {"2.0.0-5", "1.1.0-1"}


# --- keep-within -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "action", "why"),
    [
        (NOW - timedelta(days=1), KEEP, "recent"),
        (NOW - timedelta(days=29, hours=23), KEEP, "recent"),
        (NOW - timedelta(minutes=1), KEEP, "recent"),
        (NOW - timedelta(days=31), DELETE, ""),
        (NOW - timedelta(days=400), DELETE, ""),
        (datetime(2000, 1, 2, tzinfo=UTC), DELETE, ""),  # old but believable
        (None, KEEP, "unknown"),  # missing
        (datetime(1970, 1, 1, tzinfo=UTC), KEEP, "unknown"),  # SOURCE_DATE_EPOCH=0
        (datetime(1, 1, 1, tzinfo=UTC), KEEP, "unknown"),  # Go's zero time
        (datetime(1999, 12, 31, 23, 59, tzinfo=UTC), KEEP, "unknown"),  # pre-2000
        (NOW + timedelta(days=1), KEEP, "unknown"),  # the future
        (NOW + timedelta(days=3650), KEEP, "unknown"),
    ],
)
def test_keep_within(created: datetime | None, action: str, why: str) -> None:
    states = [st("1.0.0-1", created=created), st("9.0.0-1", created=NOW)]
    actions = run(states, policy(keep_within="30d"))
    assert actions["1.0.0-1"].action == action
    if action == KEEP:
        assert "keep-within" in actions["1.0.0-1"].reason
        assert why in actions["1.0.0-1"].reason


def test_without_keep_within_dates_do_not_keep() -> None:
    states = [st("1.0.0-1", created=None), st("1.0.0-2", created=NOW), st("9.0.0-1")]
    assert kinds(run(states, policy())) == {"1.0.0-1": DELETE, "1.0.0-2": DELETE, "9.0.0-1": KEEP}


@pytest.mark.parametrize(
    ("text", "delta"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("2w", timedelta(weeks=2)),
     ("90m", timedelta(minutes=90)), ("45s", timedelta(seconds=45))],
)  # fmt: skip
def test_durations(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta


@pytest.mark.parametrize("text", ["", "d", "-1d", "1.5.d", "soon", "30x", "d30"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="keep-within"):
        parse_duration(text)


@pytest.mark.parametrize("pattern", ["(", "[a-", "*x", "(?P<n>a)(?P<n>b)"])
def test_bad_regexes_are_usage_errors_naming_the_option(pattern: str) -> None:
    with pytest.raises(UsageError, match="--match") as err:
        compile_regex(pattern, "--match")
    assert pattern in str(err.value)


# --- --keep -----------------------------------------------------------------------------


def test_keep_regexes_keep_what_they_match_and_nothing_else() -> None:
    tags = ["1.0.0-1", "1.0.0-2", "1.1.0-1", "2.0.0-rc.1-1", "3.0.0-1"]
    actions = run([st(t) for t in tags], policy(keep=[r"^1\.0\.", r"-rc\."]))
    assert kinds(actions) == {
        "1.0.0-1": KEEP,
        "1.0.0-2": KEEP,
        "1.1.0-1": DELETE,
        "2.0.0-rc.1-1": KEEP,
        "3.0.0-1": DELETE,  # the highest, but other candidates survive
    }
    assert r"^1\.0\." in actions["1.0.0-1"].reason
    assert r"-rc\." in actions["2.0.0-rc.1-1"].reason


def test_a_keep_regex_does_not_make_a_candidate() -> None:
    # --keep only protects candidates; a non-candidate is kept anyway, for another reason.
    actions = run([st("latest"), st("1.0.0-1"), st("2.0.0-1")], policy(keep=["^latest$"]))
    assert kinds(actions) == {"latest": KEEP, "1.0.0-1": DELETE, "2.0.0-1": KEEP}


# --- the union of the rules -------------------------------------------------------------


def test_keep_rules_are_a_union() -> None:
    old = NOW - timedelta(days=100)
    states = [
        st("5.0.0-2", created=old),  # keep-last 1 (and keep-per-version)
        st("5.0.0-1", created=old),  # nothing: a lower build of 5.0.0
        st("4.0.0-3", created=old),  # keep-per-version 1 only
        st("4.0.0-2", created=NOW - timedelta(days=2)),  # keep-within 7d only
        st("4.0.0-1", created=old),  # nothing
        st("4.0.0-0", created=None),  # keep-within only: the date is unknown
        st("0.9.0-1", created=old),  # keep-per-version 1 (and --keep)
        st("0.9.0-0", created=old),  # --keep ^0\. only
    ]
    actions = run(states, policy(keep_last=1, keep_per_version=1, keep_within="7d", keep=[r"^0\."]))
    assert kinds(actions) == {
        "5.0.0-2": KEEP,
        "5.0.0-1": DELETE,
        "4.0.0-3": KEEP,
        "4.0.0-2": KEEP,
        "4.0.0-1": DELETE,
        "4.0.0-0": KEEP,
        "0.9.0-1": KEEP,
        "0.9.0-0": KEEP,
    }
    assert "keep-last" in actions["5.0.0-2"].reason
    assert "keep-per-version" in actions["4.0.0-3"].reason
    assert "keep-within" in actions["4.0.0-2"].reason
    assert "keep-within" in actions["4.0.0-0"].reason
    assert r"^0\." in actions["0.9.0-0"].reason


def test_each_rule_alone_and_together() -> None:
    tags = [f"1.{minor}.0-{n}" for minor in range(3) for n in range(1, 4)]
    states = [st(t, created=NOW - timedelta(days=i)) for i, t in enumerate(reversed(tags))]
    last2 = kept(run(states, policy(keep_last=2)))
    per1 = kept(run(states, policy(keep_per_version=1)))
    within = kept(run(states, policy(keep_within="2d")))  # 0, 1, 2 days old
    regex = kept(run(states, policy(keep=[r"-1$"])))
    together = kept(
        run(states, policy(keep_last=2, keep_per_version=1, keep_within="2d", keep=[r"-1$"]))
    )
    assert last2 == {"1.2.0-3", "1.2.0-2"}
    assert per1 == {"1.2.0-3", "1.1.0-3", "1.0.0-3"}
    assert within == {"1.2.0-3", "1.2.0-2", "1.2.0-1"}
    assert regex == {"1.2.0-1", "1.1.0-1", "1.0.0-1"}
    assert together == last2 | per1 | within | regex


# --- the last candidate -----------------------------------------------------------------


def test_the_last_candidate_always_survives() -> None:
    states = [st("1.0.0-1"), st("1.9.0-1"), st("1.10.0-1"), st("latest")]
    actions = run(states, policy(keep_last=0, keep_per_version=0))
    assert kinds(actions) == {
        "1.10.0-1": KEEP,
        "1.9.0-1": DELETE,
        "1.0.0-1": DELETE,
        "latest": KEEP,
    }
    assert "last candidate" in actions["1.10.0-1"].reason


def test_the_last_candidate_survives_when_every_date_is_old() -> None:
    old = NOW - timedelta(days=365)
    states = [st(f"1.0.0-{n}", created=old) for n in range(1, 6)]
    assert kept(run(states, policy(keep_within="1d"))) == {"1.0.0-5"}


def test_the_last_candidate_of_a_custom_match_is_the_newest() -> None:
    states = [st(f"nightly-{d}", created=NOW - timedelta(days=d)) for d in (3, 1, 2)]
    assert kept(run(states, policy(match=r"^nightly-"))) == {"nightly-1"}


def test_a_single_candidate_is_never_deleted() -> None:
    assert kinds(run([st("1.0.0-1")], policy())) == {"1.0.0-1": KEEP}


# --- digest safety ----------------------------------------------------------------------


def test_a_doomed_tag_sharing_its_digest_with_a_kept_tag_is_untagged() -> None:
    shared = dg("shared")
    states = [st("2.0.0-1", shared), st("1.0.0-1", shared), st("1.0.0-2")]
    actions = run(states, policy(keep_last=1))
    assert kinds(actions) == {"2.0.0-1": KEEP, "1.0.0-1": UNTAG, "1.0.0-2": DELETE}
    assert "2.0.0-1" in actions["1.0.0-1"].reason


def test_a_digest_whose_tags_all_go_is_deleted() -> None:
    shared = dg("shared")
    states = [st("3.0.0-1"), st("1.0.0-1", shared), st("1.0.0-2", shared), st("1.0.0-3", shared)]
    actions = run(states, policy(keep_last=1))
    assert kinds(actions) == {"3.0.0-1": KEEP, "1.0.0-1": DELETE, "1.0.0-2": DELETE,
                              "1.0.0-3": DELETE}  # fmt: skip


@pytest.mark.parametrize("other", ["latest", "stable", "1.0", "main-3f2a1bc"])
def test_a_non_candidate_on_a_doomed_digest_keeps_the_digest(other: str) -> None:
    shared = dg("shared")
    states = [st("2.0.0-1"), st("1.0.0-1", shared), st("1.0.0-2", shared), st(other, shared)]
    actions = run(states, policy(keep_last=1))
    assert kinds(actions) == {"2.0.0-1": KEEP, "1.0.0-1": UNTAG, "1.0.0-2": UNTAG, other: KEEP}
    assert other in actions["1.0.0-1"].reason


def test_a_digest_kept_by_one_rule_on_one_tag_is_untagged_on_the_others() -> None:
    shared = dg("shared")
    # Two builds of one version share a digest (a rebuild that changed nothing).
    states = [st("1.0.0-2", shared), st("1.0.0-1", shared), st("0.9.0-1")]
    actions = run(states, policy(keep_per_version=1))
    assert kinds(actions) == {"1.0.0-2": KEEP, "1.0.0-1": UNTAG, "0.9.0-1": KEEP}


# --- index children ---------------------------------------------------------------------


def test_a_doomed_tag_on_a_child_of_a_kept_index_is_untagged_never_deleted() -> None:
    index, amd64, arm64 = dg("index"), dg("amd64"), dg("arm64")
    states = [
        st("2.0.0-1", index, index=True),
        st("1.0.0-1", amd64),  # a child, tagged on its own (a per-arch push)
        st("1.0.0-2", arm64),
        st("1.0.0-3"),  # no child of anything
    ]
    actions = run(states, policy(keep_last=1), {index: frozenset({amd64, arm64})})
    assert kinds(actions) == {"2.0.0-1": KEEP, "1.0.0-1": UNTAG, "1.0.0-2": UNTAG,
                              "1.0.0-3": DELETE}  # fmt: skip
    assert "index" in actions["1.0.0-1"].reason


def test_children_of_a_doomed_index_may_go_with_it() -> None:
    index, child = dg("index"), dg("child")
    states = [st("3.0.0-1"), st("1.0.0-2", index, index=True), st("1.0.0-1", child)]
    actions = run(states, policy(keep_last=1), {index: frozenset({child})})
    assert kinds(actions) == {"3.0.0-1": KEEP, "1.0.0-2": DELETE, "1.0.0-1": DELETE}


def test_an_index_kept_by_a_non_candidate_protects_its_children() -> None:
    index, child = dg("index"), dg("child")
    states = [
        st("3.0.0-1"),
        st("1.0.0-2", index, index=True),
        st("latest", index, index=True),
        st("1.0.0-1", child),
    ]
    actions = run(states, policy(keep_last=1), {index: frozenset({child})})
    assert kinds(actions) == {"3.0.0-1": KEEP, "1.0.0-2": UNTAG, "latest": KEEP,
                              "1.0.0-1": UNTAG}  # fmt: skip


def test_a_kept_child_does_not_keep_its_doomed_index() -> None:
    index, child = dg("index"), dg("child")
    states = [st("1.0.0-1", index, index=True), st("2.0.0-1", child)]
    actions = run(states, policy(keep_last=1), {index: frozenset({child})})
    assert kinds(actions) == {"2.0.0-1": KEEP, "1.0.0-1": DELETE}


def test_children_of_nested_indexes_are_protected_too() -> None:
    outer, inner, leaf = dg("outer"), dg("inner"), dg("leaf")
    states = [st("2.0.0-1", outer, index=True), st("1.0.0-1", leaf)]
    children = {outer: frozenset({inner}), inner: frozenset({leaf})}
    actions = run(states, policy(keep_last=1), children)
    assert actions["1.0.0-1"].action == UNTAG


# --- signatures, attestations, SBOMs ----------------------------------------------------


@pytest.mark.parametrize("kind", ["sig", "att", "sbom"])
def test_signature_tags_are_never_candidates(kind: str) -> None:
    subject = dg("image")
    tag = sig(subject, kind)
    states = [st("1.0.0-1", subject), st(tag), st("2.0.0-1")]
    # Even a --match that matches every tag leaves signatures out of the candidates ...
    actions = run(states, policy(keep_last=1, match=".*"))
    assert kinds(actions) == {"2.0.0-1": KEEP, "1.0.0-1": DELETE, tag: DELETE}
    # ... so a signature is never "the last candidate", nor kept or counted by keep-last.
    actions = run([st(tag), st("1.0.0-1")], policy(keep_last=1, match=".*"))
    assert kinds(actions) == {tag: KEEP, "1.0.0-1": KEEP}
    assert "candidate" not in actions[tag].reason and "keep-last" not in actions[tag].reason
    # ... nor kept by a --keep regex (it would say so).
    actions = run([st(tag), st("1.0.0-1")], policy(keep=[r"\.(sig|att|sbom)$"], match=".*"))
    assert "keep:" not in actions[tag].reason


@pytest.mark.parametrize("kind", ["sig", "att", "sbom"])
def test_a_signature_follows_its_subject(kind: str) -> None:
    doomed, survivor = dg("doomed"), dg("survivor")
    states = [
        st("2.0.0-1", survivor),
        st("1.0.0-1", doomed),
        st(sig(doomed, kind)),
        st(sig(survivor, kind)),
    ]
    actions = run(states, policy(keep_last=1))
    assert kinds(actions) == {
        "2.0.0-1": KEEP,
        sig(survivor, kind): KEEP,
        "1.0.0-1": DELETE,
        sig(doomed, kind): DELETE,
    }
    assert actions[sig(doomed, kind)].reason


def test_a_signature_stays_when_its_subject_is_merely_untagged() -> None:
    shared = dg("shared")
    states = [st("2.0.0-1", shared), st("1.0.0-1", shared), st(sig(shared)), st("3.0.0-1")]
    # keep-last 1: both tags on the subject go, so the digest goes, and its signature.
    actions = run(states, policy(keep_last=1))
    assert kinds(actions) == {"3.0.0-1": KEEP, "2.0.0-1": DELETE, "1.0.0-1": DELETE,
                              sig(shared): DELETE}  # fmt: skip
    # keep-last 2: 1.0.0-1 goes alone, the subject stays for 2.0.0-1, and so does its signature.
    actions = run(states, policy(keep_last=2))
    assert kinds(actions) == {"3.0.0-1": KEEP, "2.0.0-1": KEEP, "1.0.0-1": UNTAG,
                              sig(shared): KEEP}  # fmt: skip
    states = [st("latest", shared), st("1.0.0-1", shared), st(sig(shared)), st("3.0.0-1")]
    actions = run(states, policy(keep_last=1))
    assert kinds(actions) == {"3.0.0-1": KEEP, "latest": KEEP, "1.0.0-1": UNTAG,
                              sig(shared): KEEP}  # fmt: skip


def test_a_signature_stays_when_its_subject_survives_inside_a_kept_index() -> None:
    index, child = dg("index"), dg("child")
    states = [st("2.0.0-1", index, index=True), st("1.0.0-1", child), st(sig(child))]
    actions = run(states, policy(keep_last=1), {index: frozenset({child})})
    assert actions["1.0.0-1"].action == UNTAG  # the child stays in the index
    assert actions[sig(child)].action == KEEP


def test_a_signature_of_an_index_follows_the_index() -> None:
    index, child = dg("index"), dg("child")
    states = [st("1.0.0-1", index, index=True), st(sig(index)), st("2.0.0-1")]
    actions = run(states, policy(keep_last=1), {index: frozenset({child})})
    assert kinds(actions) == {"2.0.0-1": KEEP, "1.0.0-1": DELETE, sig(index): DELETE}
    actions = run(states, policy(keep_last=2), {index: frozenset({child})})
    assert kinds(actions) == {"2.0.0-1": KEEP, "1.0.0-1": KEEP, sig(index): KEEP}


def test_a_signature_of_an_untagged_child_of_a_kept_index_stays() -> None:
    # The subject has no tag of its own, but it stays inside the index.
    index, child = dg("index"), dg("child")
    states = [st("2.0.0-1", index, index=True), st(sig(child)), st("1.0.0-1")]
    actions = run(states, policy(), {index: frozenset({child})})
    assert kinds(actions) == {"2.0.0-1": KEEP, sig(child): KEEP, "1.0.0-1": DELETE}


@pytest.mark.parametrize(
    "tag",
    ["sha256-abc.sig", "sha256-" + "A" * 64 + ".sig", "sha512-" + "a" * 64 + ".sig",
     "sha256-" + "a" * 64 + ".sig2", "sha256-" + "a" * 64],
)  # fmt: skip
def test_near_signatures_are_ordinary_tags(tag: str) -> None:
    # Not cosign's scheme: under a --match that takes everything, they are candidates.
    actions = run([st(tag, created=NOW - timedelta(days=9)), st("x", created=NOW)],
                  policy(match=".*"))  # fmt: skip
    assert kinds(actions) == {tag: DELETE, "x": KEEP}


# --- property: invariants over random repositories ----------------------------------------


def _random_case(rng: random.Random) -> tuple[list[TagState], Policy, dict[str, frozenset[str]]]:
    pool = [dg(f"d{i}") for i in range(rng.randint(1, 30))]
    index_digests = set(rng.sample(pool, rng.randint(0, min(3, len(pool)))))
    leaves = [d for d in pool if d not in index_digests]
    children = {
        d: frozenset(rng.sample(leaves, rng.randint(0, min(3, len(leaves))))) for d in index_digests
    }
    dates = [
        None,
        datetime(1970, 1, 1, tzinfo=UTC),
        NOW + timedelta(days=3),
        NOW - timedelta(days=1),
        NOW - timedelta(days=10),
        NOW - timedelta(days=100),
    ]
    names: set[str] = set()
    for _ in range(rng.randint(0, 30)):
        roll = rng.random()
        if roll < 0.75:
            pre = rng.choice(["", "", "", "-rc.1", "-rc.10", "-beta.2"])
            names.add(
                f"{rng.randint(0, 2)}.{rng.randint(0, 11)}.{rng.randint(0, 2)}{pre}"
                f"-{rng.randint(0, 120)}"
            )
        elif roll < 0.87:
            names.add(rng.choice(["latest", "stable", "1.2", "main", "pr-7", "nightly-3"]))
        else:
            names.add(sig(rng.choice([*pool, dg("absent")]), rng.choice(["sig", "att", "sbom"])))
    created_of = {d: rng.choice(dates) for d in pool}
    states = []
    for name in sorted(names):
        digest = dg("sigblob-" + name) if SIGNATURE.match(name) else rng.choice(pool)
        states.append(st(name, digest, created_of.get(digest), index=digest in index_digests))
    pol = policy(
        keep_last=rng.choice([0, 0, 1, 2, 5]),
        keep_per_version=rng.choice([0, 0, 1, 2]),
        keep_within=rng.choice([None, None, "7d", "30d"]),
        keep=rng.choice([(), (r"^1\.",), (r"-rc\.", "^0")]),
        match=rng.choice([None, None, r"^\d+\.\d+\.\d+", r"^(latest|pr-\d+|nightly-\d+)$"]),
    )
    return states, pol, children


@pytest.mark.parametrize("seed", range(6))
def test_invariants_over_random_repositories(seed: int) -> None:
    rng = random.Random(seed)
    for case in range(60):
        states, pol, children = _random_case(rng)
        where = f"seed {seed}, case {case}: {states} {pol} {children}"
        actions = run(states, pol, children)
        keep_tags = {t for t, a in actions.items() if a.action == KEEP}
        surviving = {a.digest for a in actions.values() if a.action == KEEP}
        protected = set().union(*(children[d] for d in surviving if d in children))
        deleted = {a.digest for a in actions.values() if a.action == DELETE}
        candidates = [
            s.tag for s in states if not SIGNATURE.match(s.tag) and pol.match.search(s.tag)
        ]
        # No kept tag's digest is ever deleted, nor a child of a surviving index.
        assert not deleted & surviving, where
        assert not deleted & protected, where
        # An untag is only for a digest that stays.
        for a in actions.values():
            if a.action == UNTAG:
                assert a.digest in surviving | protected, where
        # Tags outside --match (signatures aside) are always kept.
        for s in states:
            if not SIGNATURE.match(s.tag) and not pol.match.search(s.tag):
                assert s.tag in keep_tags, where
        # One candidate at least survives.
        if candidates:
            assert keep_tags & set(candidates), where

        # A signature goes only with its subject: a subject no tag reaches (an orphan, or
        # an untagged manifest) keeps it, a subject that stays (tagged, or inside a kept
        # index) keeps it, and a subject that goes takes it along.
        def closure(roots: set[str], kids: Mapping[str, frozenset[str]] = children) -> set[str]:
            out, todo = set(roots), list(roots)
            while todo:
                for child in kids.get(todo.pop(), ()):
                    if child not in out:
                        out.add(child)
                        todo.append(child)
            return out

        reachable = closure({x.digest for x in states})
        alive = closure(surviving)
        for s in states:
            m = SIGNATURE.match(s.tag)
            if m is None:
                continue
            subject = "sha256:" + m[1]
            if subject not in reachable or subject in alive:
                assert s.tag in keep_tags, where
            else:
                assert actions[s.tag].action in (DELETE, UNTAG), where
        # Soundness of the keep rules: whatever a rule keeps is kept.
        if pol.match.pattern == DEFAULT_MATCH:
            versions = sorted(
                (v for v in map(ImageVersion.parse, candidates) if v is not None), reverse=True
            )
            assert len(versions) == len(candidates), where
            for v in versions[: pol.keep_last]:
                assert str(v) in keep_tags, where
            for v in versions:
                same = [w for w in versions if w.version == v.version]
                if same.index(v) < pol.keep_per_version:
                    assert str(v) in keep_tags, where
        for tag in candidates:
            if any(p.search(tag) for p in pol.keep):
                assert tag in keep_tags, where
            created = next(s.created for s in states if s.tag == tag)
            if pol.keep_within is not None and (
                created is None or created > NOW or created.year < 2000
                or NOW - created <= pol.keep_within
            ):  # fmt: skip
                assert tag in keep_tags, where


# --- housekeeping: build-push claims and untag placeholders, whatever --match says ------

CLAIM = "imgtag-claim-e094d8b6a8f355a7"


def claim(age_seconds: float, tag: str = CLAIM) -> TagState:
    return TagState(
        tag, dg(tag + str(age_seconds)), claimed_at=NOW - timedelta(seconds=age_seconds)
    )


def test_a_stale_claim_is_deleted_whatever_match_says() -> None:
    states = [st("1.0.0-1"), claim(61)]
    acts = run(states, policy(keep_last=5, match=r"^nothing-matches$"))
    assert kinds(acts) == {"1.0.0-1": KEEP, CLAIM: DELETE}
    assert acts[CLAIM].reason == "stale claim: not renewed for 61 s (lease 60 s)"


def test_a_live_claim_is_never_touched_even_by_a_match_all_policy() -> None:
    acts = run([st("1.0.0-1"), st("1.0.0-2"), claim(59)], policy(keep_last=1, match=".*"))
    assert kinds(acts) == {"1.0.0-2": KEEP, "1.0.0-1": DELETE, CLAIM: KEEP}
    assert acts[CLAIM].reason == "live claim of a running build-push"


def test_the_lease_is_the_policys() -> None:
    short = replace(policy(keep_last=5), claim_lease=timedelta(seconds=5))
    assert kinds(run([claim(6)], short)) == {CLAIM: DELETE}
    assert kinds(run([claim(4)], short)) == {CLAIM: KEEP}


def test_a_claim_from_the_future_is_live() -> None:
    # Another runner's clock runs ahead: its claim is not stale.
    assert kinds(run([claim(-30)], policy())) == {CLAIM: KEEP}


def test_a_user_tag_that_only_looks_like_a_claim_is_an_ordinary_tag() -> None:
    # No claim content (claimed_at None): --match decides, as for any other tag.
    states = [st("1.0.0-1"), st("imgtag-claim-mine")]
    assert kinds(run(states, policy(keep_last=5)))["imgtag-claim-mine"] == KEEP
    not_named = TagState("release", dg("r"), claimed_at=NOW - timedelta(days=1))
    assert kinds(run([st("1.0.0-1"), not_named], policy(keep_last=5)))["release"] == KEEP


def test_a_leftover_placeholder_is_deleted_and_says_why() -> None:
    ph = TagState("1.0.0-1", dg("placeholder"), placeholder=True)
    acts = run([ph, st("1.0.0-2")], policy(keep_last=5))
    assert kinds(acts) == {"1.0.0-1": DELETE, "1.0.0-2": KEEP}
    assert acts["1.0.0-1"].reason == "leftover placeholder of an interrupted untag"


# --- housekeeping: build-push's temporary tags -----------------------------------------------


def temp(started: datetime | None, run_hex: str = "0a1b2c3d4e5f", arch: str = "amd64") -> str:
    from tagger.registry.markers import run_id, temp_tag
    from tagger.registry.platform import Platform

    run = run_hex if started is None else run_id(started, run_hex)
    return temp_tag(run, Platform.parse(f"linux/{arch}"))


def test_a_temporary_tag_of_a_run_that_stopped_goes_whatever_match_says() -> None:
    leftover = temp(NOW - timedelta(minutes=5))
    acts = run([st("1.0.0-1"), st(leftover)], policy(keep_last=5, match=r"^nothing$"))
    assert kinds(acts) == {"1.0.0-1": KEEP, leftover: DELETE}
    assert acts[leftover].reason == "leftover temporary tag of a build-push that stopped"


def test_a_temporary_tag_whose_run_holds_a_live_claim_is_kept_however_old() -> None:
    from tagger.registry.markers import run_id

    started = NOW - timedelta(hours=3)  # a long build, its claim renewed a moment ago
    live = replace(claim(10), claim_run=run_id(started, "0a1b2c3d4e5f"))
    tmp = temp(started)
    acts = run([st("1.0.0-1"), live, st(tmp)], policy(keep_last=1, match=".*"))
    assert kinds(acts)[tmp] == KEEP
    assert acts[tmp].reason == "temporary tag of a running build-push"


def test_a_young_temporary_tag_is_kept_until_a_lease_has_passed() -> None:
    young, old = temp(NOW - timedelta(seconds=30), "a" * 12), temp(NOW - timedelta(seconds=90))
    assert kinds(run([st("1.0.0-1"), st(young), st(old)], policy())) == {
        "1.0.0-1": KEEP,
        young: KEEP,
        old: DELETE,
    }


def test_a_leftover_temporary_tag_in_a_kept_index_goes_alone() -> None:
    # The run wrote the index, then was killed before removing its temporary tags.
    tmp = temp(NOW - timedelta(minutes=5))
    child = st(tmp, digest=dg("child"))
    index = TagState("1.0.0-1", dg("index"), is_index=True)
    acts = run([index, child], policy(), children={dg("index"): frozenset({dg("child")})})
    assert kinds(acts) == {"1.0.0-1": KEEP, tmp: UNTAG}


def test_temporary_tags_of_older_versions_go_only_when_no_claim_is_live() -> None:
    old_style = temp(None)
    assert kinds(run([st("1.0.0-1"), st(old_style)], policy()))[old_style] == DELETE
    assert kinds(run([st("1.0.0-1"), st(old_style), claim(5)], policy()))[old_style] == KEEP


# --- orphans and OCI referrers ------------------------------------------------------------


def by(actions: Sequence[Action]) -> dict[str, Action]:
    return {a.tag or a.digest: a for a in actions}


@pytest.mark.parametrize("kind", ["sig", "att", "sbom"])
def test_an_orphan_stays_unless_orphans_is_given(kind: str) -> None:
    gone = dg("gone elsewhere")
    states = [st("1.0.0-1"), st(sig(gone, kind))]
    kept = by(plan(states, policy(), NOW, {}, frozenset({gone})))
    assert kept[sig(gone, kind)].action == KEEP
    assert kept[sig(gone, kind)].reason == "orphan (--orphans removes it)"
    removed = by(plan(states, replace(policy(), orphans=True), NOW, {}, frozenset({gone})))
    assert removed[sig(gone, kind)].action == DELETE
    assert "orphan" in removed[sig(gone, kind)].reason
    assert removed["1.0.0-1"].action == KEEP, "the last candidate survives"


def test_a_referrers_index_tag_follows_its_subject_with_its_referrers() -> None:
    # oras attach on a registry without the referrers API: the tag sha256-<hex> holds an
    # index of the referrers (untagged artifact manifests).
    old, new, sbom, new_sbom = dg("old"), dg("new"), dg("sbom"), dg("new sbom")
    ref_tag, new_ref_tag = sig(old).removesuffix(".sig"), sig(new).removesuffix(".sig")
    states = [
        st("1.0.0-1", old),
        st("2.0.0-1", new),
        st(ref_tag, dg("old referrers"), index=True),
        st(new_ref_tag, dg("new referrers"), index=True),
        st(sig(sbom)),  # a signature of the old image's SBOM
    ]
    children = {dg("old referrers"): frozenset({sbom}), dg("new referrers"): frozenset({new_sbom})}
    actions = by(plan(states, policy(keep_last=1), NOW, children))
    assert actions["2.0.0-1"].action == KEEP and actions[new_ref_tag].action == KEEP
    assert actions["1.0.0-1"].action == DELETE
    assert actions[ref_tag].action == DELETE and actions[ref_tag].subject == old
    assert actions[sig(sbom)].action == DELETE, "a signature of a referrer goes with it"
    assert actions[sbom].action == DELETE and actions[sbom].tag == ""
    assert actions[sbom].subject == dg("old referrers")
    assert new_sbom not in actions, "a kept subject's referrers are not touched"
    # An index whose name merely looks like the schema but is an image is an ordinary tag.
    lookalike = [st("1.0.0-1", old), st(ref_tag, dg("x"))]
    assert by(plan(lookalike, policy(match=".*", keep_last=1), NOW))[ref_tag].subject is None


def test_referrers_from_the_api_go_by_digest_with_their_subject() -> None:
    old, new = dg("old"), dg("new")
    sbom, sig_of_sbom, new_sbom = dg("sbom"), dg("sig of sbom"), dg("new sbom")
    states = [st("1.0.0-1", old), st("2.0.0-1", new)]
    referrers = {
        old: frozenset({sbom}),
        sbom: frozenset({sig_of_sbom}),
        new: frozenset({new_sbom}),
    }
    actions = plan(states, policy(keep_last=1), NOW, {}, frozenset(), referrers)
    rows = by(actions)
    assert rows["1.0.0-1"].action == DELETE and rows["2.0.0-1"].action == KEEP
    assert (rows[sbom].action, rows[sbom].subject) == (DELETE, old)
    assert (rows[sig_of_sbom].action, rows[sig_of_sbom].subject) == (DELETE, sbom)
    assert new_sbom not in rows
    assert removals(actions) == 3
