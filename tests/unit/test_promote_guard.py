"""``imgtag promote``'s planner and executor against the typed fake registry.

The fake (``tests/fakes.py``) is for the faults a real registry cannot be made to show at
a precise moment: a contender's claim between our claim and our write, a tag that appears
right before the final write, a failure after some blobs. The happy paths and the race
between real processes are in ``tests/integration/test_promote.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from fakes import FakeRegistry
from tagger.errors import (
    NotFound,
    OverwriteDetected,
    RefusedError,
    RegistryError,
    TagExistsError,
    UsageError,
)
from tagger.lifecycle import Stop
from tagger.promote.plan import Node, parse_node, plan_copy
from tagger.promote.run import PromoteOptions, Promoter, PromoteRefused
from tagger.registry.manifests import Manifest, sha256_digest
from tagger.registry.markers import CLAIM_SETTLE_SECONDS, claim_tag
from tagger.registry.mediatypes import OCI_INDEX, OCI_MANIFEST

HOST = "fake.registry"
NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)


def put_image(reg: FakeRegistry, repo: str, tag: str | None, salt: str) -> str:
    layer = f"layer {salt}".encode() * 10
    config = json.dumps({"os": "linux", "architecture": "amd64", "salt": salt}).encode()
    reg.repo(repo).blobs[sha256_digest(layer)] = layer
    reg.repo(repo).blobs[sha256_digest(config)] = config
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "c", "digest": sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": "l", "digest": sha256_digest(layer), "size": len(layer)}],
    }
    return reg.store(repo, tag, json.dumps(doc, indent=1).encode(), OCI_MANIFEST)


def put_index(reg: FakeRegistry, repo: str, tag: str, children: list[str]) -> str:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": 1} for d in children],
    }
    return reg.store(repo, tag, json.dumps(doc).encode(), OCI_INDEX)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def promoter(
    reg: FakeRegistry, src: str, *dests: str, clock: Clock | None = None, **kw: object
) -> Promoter:
    clock = clock or Clock()
    opts = PromoteOptions(
        source=f"{HOST}/{src}", destinations=tuple(f"{HOST}/{d}" for d in dests), **kw
    )  # type: ignore[arg-type]
    return Promoter(
        opts,
        client_for=lambda _ref: reg,
        log=lambda _line: None,
        now=lambda: NOW,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )


# -- the plan ------------------------------------------------------------------------------


def test_the_plan_puts_children_first_and_each_blob_once() -> None:
    reg = FakeRegistry()
    a, b = put_image(reg, "s", None, "a"), put_image(reg, "s", None, "b")
    top = put_index(reg, "s", "t", [a, b, a])
    nodes = {d: parse_node(reg.get_manifest("s", d)) for d in (a, b)}
    plan = plan_copy(parse_node(reg.get_manifest("s", top)), nodes)
    assert plan.digests == (a, b, top)
    assert len(plan.blobs) == 4


@pytest.mark.parametrize(
    "doc",
    [
        {
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": "sha256:../x"}],
        },
        {
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": "text/html", "digest": "sha256:" + "a" * 64}],
        },
        {
            "mediaType": OCI_MANIFEST,
            "config": {"digest": "sha256:" + "a" * 64, "size": -1},
            "layers": [],
        },
        {
            "mediaType": OCI_MANIFEST,
            "config": {"digest": "sha256:" + "a" * 64, "size": 1},
            "layers": [{"digest": "md5:1", "size": 1}],
        },
    ],
)
def test_untrusted_references_are_refused_before_any_url(doc: dict[str, object]) -> None:
    raw = json.dumps(doc).encode()
    media_type = str(doc["mediaType"])
    with pytest.raises(RegistryError):
        parse_node(Manifest(sha256_digest(raw), media_type, raw))


def test_an_index_nesting_deeper_than_copied_is_refused() -> None:
    nodes: dict[str, Node] = {}
    child = Node("sha256:" + "0" * 64, OCI_MANIFEST, b"")
    nodes[child.digest] = child
    for i in range(1, 7):
        parent = Node("sha256:" + str(i) * 64, OCI_INDEX, b"", (child.digest,))
        nodes[parent.digest] = parent
        child = parent
    with pytest.raises(RegistryError, match="nests deeper"):
        plan_copy(child, nodes)


# -- the executor ------------------------------------------------------------------------


def test_an_index_is_copied_verbatim_mounted_children_first_then_the_tag() -> None:
    reg = FakeRegistry()
    a, b = put_image(reg, "stage", None, "a"), put_image(reg, "stage", None, "b")
    top = put_index(reg, "stage", "1.0.0-1", [a, b])

    result = promoter(reg, "stage:1.0.0-1", "release:1.0.0").run()

    (row,) = result.destinations
    assert (row.status, row.blobs_mounted, row.blobs_copied) == ("copied", 4, 0)
    assert reg.tags("release") == {"1.0.0": top}
    assert reg.repo("release").manifests[top] == reg.repo("stage").manifests[top]
    puts = [c.ref for c in reg.called("put_manifest") if c.repository == "release"]
    claim = claim_tag("1.0.0")
    assert puts == [claim, a, b, "1.0.0"], "the claim, the children by digest, the tag last"


def test_across_registries_blobs_are_streamed_and_counted() -> None:
    src, dst = FakeRegistry(), FakeRegistry()
    digest = put_image(src, "app", "2.0.0-1", "x")
    clients = {"src.example": src, "dst.example": dst}
    opts = PromoteOptions(source="src.example/app:2.0.0-1", destinations=("dst.example/app",))
    clock = Clock()
    result = Promoter(
        opts,
        client_for=lambda ref: clients[ref.registry],
        log=lambda _line: None,
        now=lambda: NOW,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    ).run()
    (row,) = result.destinations
    assert (row.tag, row.blobs_copied, row.blobs_mounted) == ("2.0.0-1", 2, 0)
    assert row.bytes_copied == sum(len(b) for b in src.repo("app").blobs.values())
    assert dst.tags("app") == {"2.0.0-1": digest}
    assert dst.called("mount_blob") == [], "no mount across registries"


def test_the_claim_settles_while_the_copy_runs() -> None:
    reg = FakeRegistry()
    put_image(reg, "s", "1.0.0-1", "settle")
    clock = Clock()
    # The copy takes longer than the settle time: no wait is added after it.
    reg.on("mount_blob", do=lambda _r, _c: setattr(clock, "now", clock.now + 1.0), times=None)
    promoter(reg, "s:1.0.0-1", "d:1.0.0", clock=clock).run()
    assert clock.sleeps == []
    # A copy with nothing to do waits out the settle time, no more.
    clock2 = Clock()
    promoter(reg, "s:1.0.0-1", "e:1.0.0", clock=clock2).run()
    assert clock2.sleeps == [CLAIM_SETTLE_SECONDS]


def test_exists_with_the_same_digest_writes_no_image_and_another_digest_is_refused() -> None:
    reg = FakeRegistry()
    ours = put_image(reg, "s", "1.0.0-1", "ours")
    reg.store("d", "1.0.0", reg.repo("s").manifests[ours][0], OCI_MANIFEST)
    theirs = put_image(reg, "t", "1.0.0", "theirs")

    result = promoter(reg, "s:1.0.0-1", "d:1.0.0").run()
    assert result.destinations[0].status == "exists"
    assert [c for c in reg.called("put_manifest") if c.repository == "d"] == []

    with pytest.raises(PromoteRefused) as refused:
        promoter(reg, "s:1.0.0-1", "t:1.0.0", "u:1.0.0").run()
    assert ours in str(refused.value) and theirs in str(refused.value)
    assert [d.status for d in refused.value.result.destinations] == ["refused", "copied"]
    assert reg.tags("t") == {"1.0.0": theirs}


def test_a_contender_that_claims_meanwhile_wins_and_nothing_is_tagged() -> None:
    reg = FakeRegistry()
    put_image(reg, "s", "1.0.0-1", "lose")
    claim = claim_tag("1.0.0")

    def steal(r: FakeRegistry, _call: object) -> None:
        r.store("d", claim, b'{"annotations": {"other": "run"}}', OCI_MANIFEST)

    reg.on("mount_blob", do=steal)
    with pytest.raises(RefusedError, match="won: nothing was tagged"):
        promoter(reg, "s:1.0.0-1", "d:1.0.0").run()
    assert "1.0.0" not in reg.tags("d")


def test_a_tag_that_appears_right_before_the_write_is_not_overwritten() -> None:
    reg = FakeRegistry()
    put_image(reg, "s", "1.0.0-1", "late")
    other = put_image(reg, "d", None, "other")
    # The second HEAD of the tag is the recheck (the first is the existence check).
    reg.on("head_manifest", "1.0.0", do=lambda r, _c: r.tag("d", "1.0.0", other), skip=1)
    with pytest.raises(TagExistsError, match="appeared while copying"):
        promoter(reg, "s:1.0.0-1", "d:1.0.0").run()
    assert reg.tags("d")["1.0.0"] == other
    assert not [t for t in reg.tags("d") if t.startswith("imgtag-claim-")]


def test_an_overwrite_after_the_write_is_detected() -> None:
    reg = FakeRegistry()
    put_image(reg, "s", "1.0.0-1", "verify")
    other = put_image(reg, "d", None, "other")
    reg.on("put_manifest", "1.0.0", after=True, do=lambda r, _c: r.tag("d", "1.0.0", other))
    with pytest.raises(OverwriteDetected):
        promoter(reg, "s:1.0.0-1", "d:1.0.0").run()


def test_a_failure_midway_leaves_no_tag_no_claim_and_a_rerun_finishes() -> None:
    reg = FakeRegistry(mounts=False)
    src = FakeRegistry()
    digest = put_image(src, "s", "1.0.0-1", "midway")
    clients = {"a.example": src, "b.example": reg}
    reg.fail("push_blob", error=RegistryError("the registry answered 503"), skip=1, times=None)

    def run() -> object:
        opts = PromoteOptions(source="a.example/s:1.0.0-1", destinations=("b.example/d",))
        return Promoter(
            opts, client_for=lambda ref: clients[ref.registry], log=lambda _l: None,
            now=lambda: NOW, sleep=Clock().sleep, monotonic=Clock().monotonic,
        ).run()  # fmt: skip

    with pytest.raises(RegistryError, match="503"):
        run()
    assert reg.tags("d") == {}, "no tag, and the claim was released"
    reg.hooks.clear()
    run()
    assert reg.tags("d") == {"1.0.0-1": digest}


def test_a_registry_without_deletes_takes_turns_and_verifies_again() -> None:
    reg = FakeRegistry(deletes=False)
    digest = put_image(reg, "s", "1.0.0-1", "nodelete")
    clock = Clock()
    promoter(reg, "s:1.0.0-1", "d:1.0.0", clock=clock).run()
    assert reg.tags("d") == {"1.0.0": digest}
    assert clock.sleeps == [1.0], "the no-claim settle before the second verify"


def test_signatures_come_along_before_the_tag_and_aliases_after() -> None:
    reg = FakeRegistry()
    digest = put_image(reg, "s", "1.4.2-3", "signed")
    sig = put_image(reg, "s", digest.replace(":", "-") + ".sig", "the signature")
    put_image(reg, "d", "1.4.1", "older")

    result = promoter(reg, "s:1.4.2-3", "d:1.4.2", aliases=("latest", "1.4", "main")).run()

    tags = reg.tags("d")
    assert tags[digest.replace(":", "-") + ".sig"] == sig
    assert tags["latest"] == tags["1.4"] == tags["main"] == digest
    order = [c.ref for c in reg.called("put_manifest") if c.repository == "d"]
    assert (
        order.index(digest.replace(":", "-") + ".sig")
        < order.index("1.4.2")
        < order.index("latest")
    )
    assert result.destinations[0].aliases == ["latest", "1.4", "main"]


def test_bad_input_is_exit_2_before_any_registry_call() -> None:
    reg = FakeRegistry()
    with pytest.raises(UsageError, match="digest"):
        promoter(reg, "s:1", "d@sha256:" + "a" * 64).run()
    with pytest.raises(UsageError, match="another digest"):
        promoter(reg, "s:1", "d:1", platforms=("linux/amd64",)).run()
    with pytest.raises(UsageError, match="no tag or digest"):
        promoter(reg, "s", "d:1").run()
    assert reg.calls == []
    with pytest.raises(NotFound, match="does not exist"):
        promoter(reg, "s:1.0.0-1", "d:1").run()


def test_a_signal_during_the_copy_releases_the_claim() -> None:
    reg = FakeRegistry()
    put_image(reg, "s", "1.0.0-1", "signal")
    stop = Stop(raising=False)
    reg.on("mount_blob", do=lambda _r, _c: stop.request(15))
    p = promoter(reg, "s:1.0.0-1", "d:1.0.0")
    p.stop = stop
    with pytest.raises(Exception) as stopped:
        p.run()
    assert getattr(stopped.value, "exit_code", None) == 143
    assert reg.tags("d") == {}
