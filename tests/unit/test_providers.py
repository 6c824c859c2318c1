"""The pure parts of the providers: choosing one, the ``--untagged`` planner, rate-limit
waits, version pages; and bad input that never reaches a registry (exit 2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clirun import run_cli
from tagger.errors import UsageError
from tagger.prune.plan import DELETE, KEEP, SKIP, UNTAG, Action
from tagger.prune.untagged import REASON, plan_untagged
from tagger.registry.connect import choose
from tagger.registry.http import next_link, rate_limit_wait
from tagger.registry.providers.api import check_base_url
from tagger.registry.providers.dockerhub import split_repository as hub_split
from tagger.registry.providers.ghcr import parse_versions, split_repository
from tagger.registry.reference import Reference

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=3)


def d(name: str) -> str:
    return "sha256:" + (name * 64)[:64]


@dataclass(frozen=True)
class V:
    digest: str
    tags: tuple[str, ...] = ()
    updated_at: datetime | None = OLD


def act(tag: str, digest: str, action: str) -> Action:
    return Action(tag, digest, None, action, "test")


# --- choosing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/acme/app", "ghcr"),
        ("docker.io/acme/app", "dockerhub"),
        ("index.docker.io/acme/app", "dockerhub"),
        ("registry-1.docker.io/acme/app", "dockerhub"),
        ("acme/app", "dockerhub"),
        ("registry.example.com/acme/app", "oci"),
    ],
)
def test_provider_by_host(image: str, expected: str) -> None:
    assert choose(Reference.parse_repository(image)) == expected


def test_option_beats_environment_beats_configuration() -> None:
    ref = Reference.parse_repository("ghcr.io/acme/app")
    env = {"IMGTAG_PROVIDER": "dockerhub"}
    assert choose(ref, "oci", env, "ghcr") == "oci"
    assert choose(ref, None, env, "oci") == "dockerhub"
    assert choose(ref, None, {}, "oci") == "oci"


def test_unknown_provider_says_where_to_set_it() -> None:
    with pytest.raises(UsageError, match="--provider, IMGTAG_PROVIDER or the config key"):
        choose(Reference.parse_repository("ghcr.io/a/b"), "quay")


def test_cli_unknown_provider_and_config_are_exit_2(tmp_path: Path) -> None:
    result = run_cli(["prune", "127.0.0.1:9/a/b", "--provider", "quay"], cwd=tmp_path)
    assert result.code == 2 and "quay" in result.stderr, result.stderr

    (tmp_path / ".git").mkdir()
    (tmp_path / ".imgtag.toml").write_text('[prune]\nprovider = "quay"\n')
    result = run_cli(["prune", "127.0.0.1:9/a/b"], cwd=tmp_path)
    assert result.code == 2 and "provider" in result.stderr, result.stderr


def test_cli_untagged_on_oci_is_exit_2_before_any_request(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: any request would fail with exit 5, not 2.
    result = run_cli(["prune", "127.0.0.1:9/a/b", "--untagged"], cwd=tmp_path)
    assert result.code == 2 and "--untagged" in result.stderr, result.stderr


def test_package_names() -> None:
    assert split_repository("acme/tools/app") == ("acme", "tools/app")
    with pytest.raises(UsageError):
        split_repository("app")
    assert hub_split("acme/app") == ("acme", "app")
    with pytest.raises(UsageError):
        hub_split("acme/tools/app")


# --- the API helper -------------------------------------------------------------------------


def test_api_base_keeps_the_enterprise_path_and_refuses_plain_http_elsewhere() -> None:
    assert check_base_url("https://ghe.example/api/v3", "V") == "https://ghe.example/api/v3"
    assert check_base_url("http://[::1]:8080/api/v3/", "V") == "http://[::1]:8080/api/v3"
    for bad in ("http://ghe.example/api/v3", "ftp://x", "https://u:p@x", "nonsense"):
        with pytest.raises(UsageError, match=r"^V must be"):
            check_base_url(bad, "V")


def test_rate_limit_waits() -> None:
    assert rate_limit_wait(429, {"retry-after": "7"}, 0) == 7.0
    assert rate_limit_wait(429, {}, 0) is None  # the backoff decides
    assert rate_limit_wait(429, {}, 0, bare_429=60.0) == 60.0  # GitHub's secondary limits
    reset = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000"}
    assert rate_limit_wait(403, reset, 990.0) == 11.0
    assert rate_limit_wait(403, reset, 2000.0) == 1.0  # already past: retry soon
    assert rate_limit_wait(403, {"x-ratelimit-remaining": "5"}, 0) is None  # a real denial
    assert rate_limit_wait(404, {"retry-after": "1"}, 0) is None


def test_next_link_resolves_relative_targets() -> None:
    assert next_link('</x?page=3>; rel="next"', "https://a.io/x?page=2") == "https://a.io/x?page=3"
    assert next_link(None, "https://a.io/") is None


def test_version_pages_keep_only_container_versions() -> None:
    page = [
        {"id": 1, "name": d("a"), "metadata": {"container": {"tags": ["1.0.0-1", 5]}}},
        {"id": 2, "name": "latest", "metadata": {}},  # not a digest: not a container version
        {"id": True, "name": d("b")},
        {"id": 3, "name": d("c")},
        "junk",
    ]
    versions = parse_versions(page)
    assert [(v.id, v.tags) for v in versions] == [(1, ("1.0.0-1",)), (3, ())]


# --- the --untagged planner -----------------------------------------------------------------


def test_untagged_leftovers_go_and_what_survivors_need_stays() -> None:
    index, kid_a, kid_b = d("i"), d("1"), d("2")
    gone_index, gone_kid = d("j"), d("3")
    signed, subject = d("s"), d("5")
    leftover, fresh = d("l"), d("f")
    actions = [
        act("1.0.0-2", index, KEEP),
        act("1.0.0-1", gone_index, DELETE),
        act(f"sha256-{subject[7:]}.sig", signed, KEEP),
    ]
    versions = [
        V(index, ("1.0.0-2",)),
        V(gone_index, ("1.0.0-1",)),
        V(kid_a),
        V(kid_b),
        V(gone_kid),
        V(subject),
        V(leftover),
        V(fresh, updated_at=NOW - timedelta(minutes=5)),
    ]
    children = {index: frozenset({kid_a, kid_b}), gone_index: frozenset({gone_kid})}

    rows = plan_untagged(versions, actions, children, NOW)

    by_digest = {r.digest: r for r in rows}
    assert {x for x, r in by_digest.items() if r.action == DELETE} == {gone_kid, leftover}
    assert by_digest[fresh].action == KEEP and "last 60 min" in by_digest[fresh].reason
    assert all(r.tag == "" and r.created is None for r in rows)
    assert by_digest[leftover].reason == REASON
    assert not {kid_a, kid_b, subject} & set(by_digest)


def test_untagged_children_of_an_untag_or_skip_and_of_recent_indexes_stay() -> None:
    untagged_index, skipped_index, recent_index = d("u"), d("k"), d("r")
    kid_u, kid_k, kid_r, undated = d("1"), d("2"), d("3"), d("4")
    actions = [act("1.0.0-1", untagged_index, UNTAG), act("1.0.0-2", skipped_index, SKIP)]
    versions = [
        V(kid_u),
        V(kid_k),
        V(kid_r),
        V(recent_index, updated_at=NOW),
        V(undated, updated_at=None),  # no date: never deleted on a guess
    ]
    children = {
        untagged_index: frozenset({kid_u}),
        skipped_index: frozenset({kid_k}),
        recent_index: frozenset({kid_r}),
    }

    rows = plan_untagged(versions, actions, children, NOW)

    assert [r for r in rows if r.action == DELETE] == []
    assert {r.digest for r in rows} == {recent_index, undated}
