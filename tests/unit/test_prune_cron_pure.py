"""The pure parts of the cleanup cron: ``--keep-from`` parsing and the in-use rule,
``IMAGE`` targets with ``/*``, the untagged grace, the per-repository summaries, and
``--validate`` over the typed fake registry (``tests/fakes.py``).

No I/O but the fake's dicts; ``now`` is fixed.
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from fakes import FakeRegistry
from tagger.errors import UsageError
from tagger.prune.inuse import parse_in_use, read_in_use, resolve_in_use
from tagger.prune.plan import DELETE, IN_USE, KEEP, Action, Policy, TagState, plan
from tagger.prune.report import render_text
from tagger.prune.run import PruneResult, parse_target
from tagger.prune.untagged import plan_untagged
from tagger.prune.validate import validate
from tagger.registry.protocols import Version
from tagger.registry.reference import Reference

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def dg(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


# --- --keep-from ------------------------------------------------------------------------------


def test_kubectl_jsonpath_output_and_one_a_line_both_parse() -> None:
    text = (
        "reg.example:5000/team/app:1.0.0-3 nginx:1.27 reg.example:5000/team/app@" + dg("x")
        + "\n# a comment\n\n" + dg("y") + "  # running by digest\nbusybox\n"
    )  # fmt: skip
    entries = parse_in_use(text, "-")
    assert [e.line for e in entries] == [1, 1, 1, 4, 5]
    assert str(entries[0].reference) == "reg.example:5000/team/app:1.0.0-3"
    assert entries[2].reference is not None and entries[2].reference.digest == dg("x")
    assert entries[3].digest == dg("y")
    assert str(entries[4].reference) == "docker.io/library/busybox:latest"


@pytest.mark.parametrize(
    "word", ["Team/App", "sha256:abc", "reg.example/app:-bad", "a//b", "reg.example/app@md5:00"]
)
def test_a_word_that_is_no_reference_is_exit_2_naming_its_line(word: str) -> None:
    with pytest.raises(UsageError, match=r"^--keep-from pods\.txt, line 2: ") as caught:
        parse_in_use(f"nginx\nok:1 {word}\n", "pods.txt")
    assert caught.value.exit_code == 2


def test_an_unreadable_file_is_exit_2(tmp_path: object) -> None:
    with pytest.raises(UsageError, match="cannot be read"):
        read_in_use("/nonexistent/in-use.txt")
    assert read_in_use("-", lambda: dg("z"))[0].digest == dg("z")


def test_tags_are_resolved_once_and_other_registries_passed_over() -> None:
    fake = FakeRegistry()
    app = fake.add_image("team/app", "1.0.0-1", salt="a")
    entries = parse_in_use(
        "fake.registry/team/app:1.0.0-1 fake.registry/team/app:1.0.0-1 "
        "fake.registry/team/app:gone nginx:1.27 docker.io/library/redis@" + dg("r"),
        "-",
    )
    found = resolve_in_use(entries, {"fake.registry": fake})
    assert found == frozenset({app, dg("r")})
    assert len(fake.called("head_manifest")) == 2  # 1.0.0-1 once, gone once, nginx never


# --- the in-use rule --------------------------------------------------------------------------


def test_a_tag_on_a_digest_in_use_or_on_an_index_holding_one_is_kept() -> None:
    states = [
        TagState("1.0.0-1", dg("1")),
        TagState("1.0.0-2", dg("i"), is_index=True),
        TagState("1.0.0-3", dg("3")),
        TagState("1.0.0-4", dg("4")),
    ]
    children = {dg("i"): frozenset({dg("j")}), dg("j"): frozenset({dg("child")})}
    pol = Policy(keep_last=1, keep_per_version=0)
    in_use = frozenset({dg("1"), dg("child")})
    actions = {a.tag: a for a in plan(states, pol, NOW, children, in_use=in_use)}
    assert (actions["1.0.0-1"].action, actions["1.0.0-1"].reason) == (KEEP, IN_USE)
    assert (actions["1.0.0-2"].action, actions["1.0.0-2"].reason) == (KEEP, IN_USE)
    assert actions["1.0.0-3"].action == DELETE
    assert actions["1.0.0-4"].reason.startswith("keep-last")
    # Without the list, the same plan deletes both.
    plain = {a.tag: a.action for a in plan(states, pol, NOW, children)}
    assert plain["1.0.0-1"] == plain["1.0.0-2"] == DELETE


def test_untagged_versions_in_use_stay_and_the_grace_is_the_one_given() -> None:
    old, young, used = (
        Version(1, dg("old"), (), None, NOW - timedelta(hours=3)),
        Version(2, dg("young"), (), None, NOW - timedelta(minutes=20)),
        Version(3, dg("used"), (), None, NOW - timedelta(days=9)),
    )
    grace, in_use = timedelta(minutes=10), frozenset({dg("used")})
    rows = {a.digest: a for a in plan_untagged([old, young, used], [], {}, NOW, grace, in_use)}
    assert rows[dg("old")].action == rows[dg("young")].action == DELETE
    assert (rows[dg("used")].action, rows[dg("used")].reason) == (KEEP, "in use")
    longer = {a.digest: a for a in plan_untagged([old, young], [], {}, NOW, timedelta(hours=1))}
    assert longer[dg("young")].action == KEEP
    assert "within the last 60 min" in longer[dg("young")].reason


# --- targets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "registry", "path", "wildcard"),
    [
        ("reg.example/team/*", "reg.example", "team", True),
        ("reg.example:5000/*", "reg.example:5000", "", True),
        ("localhost/a/b/*", "localhost", "a/b", True),
        ("reg.example/team/app", "reg.example", "team/app", False),
    ],
)
def test_targets(text: str, registry: str, path: str, wildcard: bool) -> None:
    target = parse_target(text)
    assert (target.ref.registry, target.ref.repository, target.wildcard) == (
        registry, path, wildcard
    )  # fmt: skip


@pytest.mark.parametrize("text", ["reg.example/te*m/*", "reg.example/*/app", "*", "reg.example/a*"])
def test_a_star_anywhere_but_the_end_is_exit_2(text: str) -> None:
    with pytest.raises(UsageError, match="only as a last /"):
        parse_target(text)


# --- summaries --------------------------------------------------------------------------------


def test_one_summary_line_a_repository_then_the_total() -> None:
    result = PruneResult()
    for name, actions in (
        ("a", [Action("1.0.0-1", dg("a1"), None, KEEP, "x"), Action("1.0.0-0", dg("a0"), None,
                                                                     DELETE, "y")]),
        ("b", [Action("1.0.0-1", dg("b1"), None, KEEP, "x")]),
    ):  # fmt: skip
        result.plans.append((Reference("reg.example", f"team/{name}"), actions))
    lines = render_text(result).splitlines()
    assert lines[-3:] == [
        "reg.example/team/a: keep 1, delete 1, untag 0, skip 0",
        "reg.example/team/b: keep 1, delete 0, untag 0, skip 0",
        "in total, 2 repositories: keep 2, delete 1, untag 0, skip 0 "
        "(dry run: nothing deleted; pass --apply)",
    ]


# --- --validate -------------------------------------------------------------------------------


def test_validate_names_a_tag_whose_config_or_child_is_missing() -> None:
    fake = FakeRegistry()
    good = fake.add_image("app", "1.0.0-1", salt="good")
    bad = fake.add_image("app", "1.0.0-2", salt="bad")
    fake.add_index(
        "app", "1.0.0-3", [(bad, "application/vnd.docker.distribution.manifest.v2+json")]
    )
    fake.add_index(
        "app", "1.0.0-4", [(good, "application/vnd.docker.distribution.manifest.v2+json")]
    )
    config = fake.get_manifest("app", bad).json()["config"]["digest"]
    with fake._lock:
        del fake.repo("app").blobs[config]
    with ThreadPoolExecutor(4) as pool:
        checked, broken = validate(fake, "r/app", "app", ["1.0.0-1", "1.0.0-2", "1.0.0-3",
                                                          "1.0.0-4", "gone"], pool)  # fmt: skip
    assert checked == 4  # "gone" is no tag that stays
    assert {b.tag for b in broken} == {"1.0.0-2", "1.0.0-3"}
    by_tag = {b.tag: b.what for b in broken}
    assert re.match(r"the config sha256:\w+ of sha256:\w+ is missing", by_tag["1.0.0-2"])
    assert by_tag["1.0.0-3"].startswith("a child of the index")
