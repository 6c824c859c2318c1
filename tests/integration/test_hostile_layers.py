"""``imgtag analyze --from-registry`` on hostile layers (hand-built tar headers, pushed to the
bed's plain registry), through the real command line in a child process: exit code, one
sentence on stderr, no traceback, and the child's peak RSS.

The cases are issue 15's item 5 (docs/registries.md, "Untrusted answers"): GNU long names
and PAX headers that declare hundreds of MiB, paths millions of components deep, sizes
that lie, sparse maps without end. Each layer is a few hundred KiB of gzip at most.

The RSS is measured in a small Python process that runs imgtag as ITS child and reports
``getrusage(RUSAGE_CHILDREN)``: a child forked straight from pytest would count pytest's
own pages (Linux keeps the larger of the two at ``exec``).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

import tarcraft as tc

import testbed as tb
from seed import seed_blobs
from tagger.registry.client import RegistryClient
from tagger.registry.transport import Transport

REPO_ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20
#: A normal analysis of these small images peaks at ≈ 40 MiB here; before the bounds, the
#: cases below took 0.8-1.5 GB (a 256 MiB name is read whole and copied twice).
RSS_LIMIT_KIB = 300 * 1024

#: The 9 million implied directories below: 2.5 GB before, ≈ 56 MiB now (a normal run ≈ 40).
IMPLIED_RSS_LIMIT_KIB = 150 * 1024

# `-c _MEASURE FD ARGV...`: runs ARGV as a child, writes its exit code and peak RSS (KiB)
# as JSON to FD.
_MEASURE = """
import json, os, resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
os.write(int(sys.argv[1]), json.dumps([code, rss]).encode())
"""


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    max_rss_kib: int


def imgtag(args: list[str]) -> Run:
    """``imgtag ARGS`` in a fresh child process (killed after 120 s whatever happens)."""
    read_fd, write_fd = os.pipe()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO_ROOT)}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(write_fd), sys.executable, "-m", "tagger", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            pass_fds=(write_fd,),
            timeout=120,
        )
    finally:
        os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        code, rss = json.loads(pipe.read() or b"[null, 0]")
    assert proc.returncode == 0, proc.stderr
    return Run(code, proc.stdout, proc.stderr, rss)


@pytest.fixture(scope="module")
def client(registry_plain: tb.Registry) -> RegistryClient:
    return RegistryClient(Transport(registry_plain.host, lambda: None))


def push(client: RegistryClient, registry: tb.Registry, tag: str, *layers: tc.GzipLayer) -> str:
    seed_blobs(client, "hostile-layers", tag, [layer.blob() for layer in layers])
    return registry.image("hostile-layers", tag)


def analyze(ref: str) -> Run:
    return imgtag(["analyze", "--from-registry", ref, "--base", "0", "--format", "json"])


def assert_refused(run: Run, *words: str) -> None:
    """Exit 5 (the layer came from a registry), one sentence about the layer, no report,
    no traceback, memory bounded."""
    errors = [line for line in run.stderr.splitlines() if line.startswith("imgtag: error:")]
    assert run.code == 5, run.stderr
    assert len(errors) == 1 and "layer" in errors[0], run.stderr
    assert all(word in errors[0] for word in words), errors
    assert "Traceback" not in run.stderr and run.stdout == ""
    assert run.max_rss_kib < RSS_LIMIT_KIB, run.max_rss_kib


def huge_long_name(type_: bytes) -> tc.GzipLayer:
    """A GNU long name (``L``) or link (``K``) of 256 MiB, then an entry it names."""
    size = 256 * MIB + 1
    layer = tc.GzipLayer().add(tc.header("././@LongLink", type_=type_, size=size))
    layer.repeat(b"a" * MIB, 256).add(b"\0" + tc.pad(size))
    return layer.add(tc.header("x", type_=b"0" if type_ == b"L" else b"2")).add(tc.end())


def huge_pax_path() -> tc.GzipLayer:
    """A PAX header of one ``path`` record of 256 MiB."""
    value = 256 * MIB
    body = len(b" path=\n") + value
    length = body + len(str(body))
    length += len(str(length)) + body - length  # the length counts its own digits
    layer = tc.GzipLayer().add(tc.header("././@PaxHeader", type_=b"x", size=length))
    layer.add(b"%d path=" % length).repeat(b"p" * MIB, 256).add(b"\n" + tc.pad(length))
    return layer.add(tc.header("x")).add(tc.end())


def deep_path(components: int) -> tc.GzipLayer:
    name = b"a/" * components + b"f"
    return tc.GzipLayer().add(tc.gnu_long_name(name)).add(tc.header("f")).add(tc.end())


@pytest.mark.parametrize(
    ("layer", "words"),
    [
        pytest.param(lambda: huge_long_name(b"L"), ["GNU long name", "268435457"], id="long-name"),
        pytest.param(lambda: huge_long_name(b"K"), ["GNU long name"], id="long-link"),
        pytest.param(huge_pax_path, ["PAX header"], id="pax-path"),
        pytest.param(
            lambda: (
                tc.GzipLayer()
                .add(tc.pax(b"".join(tc.pax_record(f"k{i}", b"v") for i in range(200_000))))
                .add(tc.header("x"))
                .add(tc.end())
            ),
            ["PAX header"],
            id="pax-many-records",
        ),
        # 5 million components (10 MB of name, 10 KiB of gzip): 1.5 GB of tree before.
        pytest.param(lambda: deep_path(5_000_000), ["GNU long name"], id="deep-path"),
        pytest.param(
            lambda: (
                tc.GzipLayer()
                .add(tc.pax(tc.pax_record("path", b"d/" * 39_999 + b"dd")))
                .add(tc.header("x"))
                .add(tc.end())
            ),
            ["path of 80000 bytes"],
            id="pax-path-above-64KiB",
        ),
        pytest.param(
            lambda: tc.GzipLayer().add(tc.gnu_long_name(b"x" * 1000)),
            ["not a tar archive"],
            id="long-name-then-nothing",
        ),
        pytest.param(
            lambda: tc.GzipLayer().add(tc.gnu_long_name(b"x" * 1000)).add(tc.end()),
            ["not a tar archive"],
            id="long-name-then-end",
        ),
        # Sizes that lie: skipped a block at a time, these never finished before.
        pytest.param(
            lambda: (
                tc.GzipLayer()
                .add(tc.pax(tc.pax_record("size", b"1" + b"0" * 30)))
                .add(tc.header("f"))
            ),
            ["size of 1" + "0" * 30],
            id="pax-size-lies",
        ),
        pytest.param(
            lambda: tc.GzipLayer().add(tc.header("f", size=1 << 80)),
            ["size of"],
            id="base-256-size-lies",
        ),
        pytest.param(
            lambda: tc.GzipLayer().add(tc.header("f", size=1 << 40)).add(b"x" * 512),
            ["damaged", "end of data"],
            id="size-runs-past-the-end",
        ),
        # An old-GNU sparse header whose map goes on past the end: exit 70 before.
        pytest.param(
            lambda: tc.GzipLayer().add(
                tc.header("s", type_=b"S", extended=True, sparse=[(1, 1)], realsize=10)
            ),
            ["sparse map"],
            id="sparse-map-ends-early",
        ),
        pytest.param(
            lambda: (
                tc.GzipLayer()
                .add(tc.header("s", type_=b"S", extended=True, sparse=[(1, 1)], realsize=10))
                .repeat(bytes(504) + b"\1" + bytes(7), 4000)
                .add(tc.end())
            ),
            ["GNU sparse map above"],
            id="sparse-map-without-end",
        ),
        pytest.param(
            lambda: (
                tc.GzipLayer()
                .add(
                    tc.pax(
                        tc.pax_record("GNU.sparse.major", b"1")
                        + tc.pax_record("GNU.sparse.minor", b"0")
                    )
                )
                .add(tc.header("s"))
                .add(b"100000000\n")
                .repeat(b"1\n" * (MIB // 2), 4)
            ),
            ["GNU sparse map above"],
            id="pax-sparse-map-without-end",
        ),
        pytest.param(
            lambda: tc.GzipLayer().repeat(tc.pax(tc.pax_record("a", b"b")), 9).add(tc.header("x")),
            ["extension headers in a row"],
            id="extension-chain",
        ),
        pytest.param(
            lambda: tc.GzipLayer().add(tc.entry("../escape", b"x")).add(tc.end()),
            ["outside the root", ".."],
            id="dotdot",
        ),
    ],
)
def test_hostile_headers_are_refused_in_bounded_memory(
    client: RegistryClient,
    registry_plain: tb.Registry,
    layer: object,
    words: list[str],
    request: pytest.FixtureRequest,
) -> None:
    assert callable(layer)
    ref = push(client, registry_plain, request.node.callspec.id, layer())
    assert_refused(analyze(ref), *words)


def figures(run: Run) -> dict[str, object]:
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    doc = json.loads(run.stdout)
    return {"size": doc["size"], "wasted_bytes": doc["wasted_bytes"], "worst": doc["worst"]}


def test_a_deep_tree_removed_by_a_whiteout(
    client: RegistryClient, registry_plain: tb.Registry
) -> None:
    """30,000 levels (a name just under 64 KiB) then a whiteout of the top: the removal
    walk held a path string per level before (0.9 GB); the waste is the file's 5 bytes."""
    name = b"a/" * 30_000 + b"f"
    lower = tc.GzipLayer().add(tc.gnu_long_name(name)).add(tc.header("f", size=5))
    lower.add(b"hello" + tc.pad(5)).add(tc.end())
    upper = tc.GzipLayer().add(tc.entry(".wh.a")).add(tc.end())
    run = analyze(push(client, registry_plain, "deep-whiteout", lower, upper))
    got = figures(run)
    assert (got["size"], got["wasted_bytes"]) == (5, 5)
    worst = got["worst"]
    assert isinstance(worst, list) and worst[0]["path"] == "/" + name.decode()
    assert run.max_rss_kib < RSS_LIMIT_KIB, run.max_rss_kib


def test_many_files_in_one_deep_directory(
    client: RegistryClient, registry_plain: tb.Registry
) -> None:
    """The real tree is 20,000 directories and 300 files: memory follows it, not the
    300 names of 40 KB each."""
    layer = tc.GzipLayer()
    for i in range(300):
        name = b"a/" * 20_000 + b"f%d" % i
        layer.add(tc.gnu_long_name(name)).add(tc.header("f", size=1)).add(b"x" + tc.pad(1))
    run = analyze(push(client, registry_plain, "deep-shared", layer.add(tc.end())))
    assert figures(run)["size"] == 300
    assert run.max_rss_kib < RSS_LIMIT_KIB, run.max_rss_kib


def test_implied_directories_cost_no_node_each(
    client: RegistryClient, registry_plain: tb.Registry
) -> None:
    """300 files, each below its own tree 30,000 levels deep (names just under 64 KiB): 9
    million directories that no entry declares, from 36 KiB of gzip. A node per level took
    2.5 GB before; now each chain of undeclared directories is one node. A layer above
    whites out half the trees: removals walk through the chains and name the right paths."""
    lower = tc.GzipLayer()
    for i in range(300):
        name = b"t%d/" % i + b"a/" * 30_000 + b"f"
        lower.add(tc.gnu_long_name(name)).add(tc.header("f", size=1)).add(b"x" + tc.pad(1))
    lower.add(tc.end())
    upper = tc.GzipLayer()
    for i in range(150):
        upper.add(tc.entry(f".wh.t{i}"))
    run = analyze(push(client, registry_plain, "deep-forest", lower, upper.add(tc.end())))
    got = figures(run)
    assert (got["size"], got["wasted_bytes"]) == (300, 150)
    worst = got["worst"]
    assert isinstance(worst, list) and worst[0]["path"] == "/t0/" + "a/" * 30_000 + "f"
    assert worst[0]["removed_in"] == [1]
    assert run.max_rss_kib < IMPLIED_RSS_LIMIT_KIB, run.max_rss_kib


def test_names_at_the_bound_are_read(client: RegistryClient, registry_plain: tb.Registry) -> None:
    """A path of exactly 64 KiB (GNU long name) and a link name of 64 KiB (PAX) are fine."""
    path = b"d/" * (32 * 1024 - 1) + b"ff"  # 65536 bytes
    assert len(path) == 64 * 1024
    layer = tc.GzipLayer().add(tc.gnu_long_name(path)).add(tc.header("f", size=3))
    layer.add(b"abc" + tc.pad(3))
    layer.add(tc.pax(tc.pax_record("linkpath", path))).add(tc.header("hard", type_=b"1"))
    run = analyze(push(client, registry_plain, "at-the-bound", layer.add(tc.end())))
    assert figures(run)["size"] == 3
    assert run.max_rss_kib < RSS_LIMIT_KIB, run.max_rss_kib


def test_a_zero_filled_8_gib_layer_in_constant_memory(
    client: RegistryClient, registry_plain: tb.Registry
) -> None:
    """One 8 GiB file of zeros (8 MiB of gzip: 128 identical members of 64 MiB of zeros,
    which layers.py reads in turn), analysed as it streams: memory does not grow with it."""
    size = 8 << 30
    chunk = zlib.compress(bytes(64 * MIB), 1, wbits=16 + zlib.MAX_WBITS)
    blob = b"".join(
        [
            gzip.compress(tc.header("zeros", size=size), mtime=0),
            chunk * (size // (64 * MIB)),
            gzip.compress(tc.end(), mtime=0),
        ]
    )
    # imgtag never checks a diff_id against the layer's bytes (the blob digest it checks
    # is the registry's); hashing 8 GiB here would only cost time.
    diff_id = "sha256:" + "0" * 64
    seed_blobs(client, "hostile-layers", "zeros", [(blob, diff_id)])
    run = analyze(registry_plain.image("hostile-layers", "zeros"))
    assert figures(run)["size"] == size
    assert run.max_rss_kib < RSS_LIMIT_KIB, run.max_rss_kib
