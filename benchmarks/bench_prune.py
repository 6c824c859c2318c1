#!/usr/bin/env python3
"""Benchmark ``imgtag prune --apply`` against re-checking and minimal clients and ``skopeo``.

What it measures: the wall-clock time to cut a repository of 1,000 tags (each on a digest of
its own) down to its 5 highest tags, as one complete process, in four ways in the same run:

- ``imgtag prune REPO --keep-last 5 --keep-per-version 0 --apply --concurrency 8``;
- the least a client can do with imgtag's safety (``--rechecking-client``, a small function
  of this file run as a subprocess so that interpreter start-up counts on both sides): one
  ``GET tags/list``, concurrent manifest HEADs for the digests, a numeric sort, then for
  each doomed tag (highest first) a HEAD re-check of its digest right before its DELETE by
  digest, eight threads over one pooled ``requests.Session``;
- the least any client can do (``--minimal-client``, run the same way): the same without
  the re-check, for information (what the re-check costs);
- a sequential ``skopeo delete --tls-verify=false docker://REPO:TAG`` loop over the 995 tags,
  one process per tag, as a shell user would write it.

The set-up is the one of benchmarks/README.md: identical repositories, one per
contender. Distribution 2.8 scans every tag of the repository on each delete by digest, so
the registry's own cost dominates and falls as the tags go. The contract's targets are
``imgtag / re-checking`` <= 1.10 and ``imgtag / skopeo`` <= 0.45; ``imgtag / minimal`` is
printed without a target.

How:

1. The registry: ``--registry HOST:PORT`` (or ``IMGTAG_TESTBED_PLAIN``, which ``eval "$(python
   tests/testbed.py up)"`` exports) uses a running plain-HTTP, anonymous registry with deletes
   enabled; otherwise the script starts the bed of ``tests/testbed.py`` (root only) and stops it
   at the end.
2. Every round seeds new repositories ``bench/RUN-ROUND/a`` (imgtag), ``.../d``
   (re-checking), ``.../b`` (minimal) and ``.../c`` (skopeo, only in rounds that run it)
   through the registry API: a shared one-file layer, and per tag a unique config blob
   (POST + monolithic PUT) and a schema-2 manifest (PUT), from a thread pool over one
   session. All the repositories hold the same manifests, so every
   contender starts from the same state; a new path per round means no contender ever meets
   what an earlier round left, even on a long-lived bed. Tags are ``X.Y.Z-N`` of the imgtag
   grammar spread over 1.0.0, 1.1.0, 1.2.0 and 1.10.0 (numeric order, not string order, picks
   the top five: ``1.10.0-250`` ... ``1.10.0-246``).
3. N rounds (``--rounds``, default 3); skopeo runs only in the first ``--skopeo-rounds``
   (default 1) because its loop alone takes about a minute; ``--skip-skopeo`` leaves it out.
   Each contender is one timed process (``time.perf_counter()`` around ``subprocess.run``),
   its output to a file; the order rotates every round so drift hits all alike. Seeding and an
   ``os.sync()`` before each contender happen outside the timed window.
4. After each contender the repository must hold exactly the 5 highest tags, still on their
   digests; otherwise the run stops with exit 1 (a contender that did not do the work would
   make the comparison meaningless).
5. Medians (s), per-delete cost, the CPU time of each contender's process tree and (when the
   bed was started here) of the registry meanwhile, imgtag's ratio to each peer of the
   medians and per round (also logged as each round ends), and whether the targets are
   met; ``--json``. The CPU columns move much less with
   the machine's load than wall time does.

The script reports and never asserts timings: it exits 0 unless a command failed, a
repository was left in the wrong state or the bed did not start (1). Standard library and
``requests`` (a dependency of imgtag) only.

Usage: ``sudo python benchmarks/bench_prune.py`` (``--json`` for machines,
``--skip-skopeo`` for a two-minute run).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
import requests.adapters
from benchlib import BenchError, find_tool, log, started_bed

THIS_SCRIPT = Path(__file__).resolve()

# Distribution answers 404 for an OCI image unless the OCI types are accepted
# (docs/registries.md): every client here sends all four.
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# 1.10.0 sorts above 1.2.0 only numerically: a client that sorted strings would keep the
# wrong five and fail the check after its run.
VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "1.10.0")
TAG_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)-(\d+)$")

NAMES = ("imgtag", "rechecking", "minimal", "skopeo")
LABELS = {
    "imgtag": "imgtag prune --apply",
    "rechecking": "re-checking client",
    "minimal": "minimal client",
    "skopeo": "skopeo delete loop",
}
REPO_SUFFIX = {"imgtag": "a", "minimal": "b", "skopeo": "c", "rechecking": "d"}
# Every peer imgtag is compared with, in the order the report shows them.
PEERS = ("rechecking", "minimal", "skopeo")
# The performance targets (benchmarks/README.md). The minimal client has none: it skips
# the re-check before each delete that imgtag must do, so its ratio is information (what
# that safety costs).
TARGET_MAX = {"rechecking": 1.10, "skopeo": 0.45}

# Variables that would change what imgtag decides (IMGTAG_KEEP_LAST, IMGTAG_MATCH, ...) or
# route loopback traffic through a proxy. IMGTAG_TESTBED_* go too: no contender needs them.
DROPPED_ENV_PREFIXES = ("IMGTAG_",)
DROPPED_ENV = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")

# A shell user's loop: one skopeo process per tag, stop at the first failure.
SKOPEO_LOOP = (
    'skopeo=$1; ref=$2; shift 2; for t in "$@"; do '
    '"$skopeo" delete --tls-verify=false "docker://$ref:$t" || exit 1; done'
)


def tag_key(tag: str) -> tuple[int, ...] | None:
    """The numeric order of an ``X.Y.Z-N`` tag, or None for a tag that is no candidate.

    >>> sorted(["1.2.0-9", "1.10.0-1", "1.2.0-10"], key=tag_key)
    ['1.2.0-9', '1.2.0-10', '1.10.0-1']
    """
    m = TAG_RE.match(tag)
    return tuple(int(part) for part in m.groups()) if m else None


def tag_names(count: int) -> list[str]:
    """``count`` tags spread evenly over VERSIONS in order, builds numbered from 1.

    >>> tag_names(6)
    ['1.0.0-1', '1.0.0-2', '1.1.0-1', '1.2.0-1', '1.2.0-2', '1.10.0-1']
    """
    tags: list[str] = []
    builds: dict[str, int] = {}
    for i in range(count):
        version = VERSIONS[i * len(VERSIONS) // count]
        builds[version] = builds.get(version, 0) + 1
        tags.append(f"{version}-{builds[version]}")
    return tags


def _key(tag: str) -> tuple[int, ...]:
    key = tag_key(tag)
    assert key is not None, tag
    return key


def pooled_session(size: int) -> requests.Session:
    session = requests.Session()
    # No proxies or ~/.netrc from the environment: loopback traffic goes straight to it.
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=max(1, size))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# --------------------------------------------------------------------------- minimal client


def minimal_client(image: str, keep: int, concurrency: int) -> int:
    """The least a client can do to keep the ``keep`` highest tags of a plain-HTTP repo.

    One tag list (Distribution sends every tag at once), a HEAD per tag for its digest, a
    numeric sort, a DELETE per doomed digest; HEADs and DELETEs on ``concurrency`` threads
    over one pooled session. It skips what imgtag adds for safety (re-HEAD before each delete,
    the delete-support probe, shared-digest handling beyond not deleting a kept digest).
    """
    host, _, repository = image.partition("/")
    base = f"http://{host}/v2/{repository}"
    session = pooled_session(concurrency)
    listing = session.get(f"{base}/tags/list", timeout=60)
    listing.raise_for_status()
    tags = [t for t in listing.json().get("tags") or [] if tag_key(t) is not None]

    def head(tag: str) -> tuple[str, str]:
        resp = session.head(
            f"{base}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}, timeout=60
        )
        resp.raise_for_status()
        return tag, resp.headers["Docker-Content-Digest"]

    def delete(digest: str) -> None:
        resp = session.delete(f"{base}/manifests/{digest}", timeout=60)
        if resp.status_code not in (200, 202, 404):  # 404: gone already, the goal anyway
            resp.raise_for_status()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        digests = dict(pool.map(head, tags))
        ordered = sorted(digests, key=_key, reverse=True)
        kept = {digests[t] for t in ordered[:keep]}
        # A DELETE by digest takes every tag on it: never one that a kept tag is on.
        doomed = sorted({digests[t] for t in ordered[keep:]} - kept)
        list(pool.map(delete, doomed))
    print(f"{image}: {len(tags)} tags, deleted {len(doomed)} digests, kept {min(keep, len(tags))}")
    return 0


# --------------------------------------------------------------------------- re-checking client


def rechecking_client(image: str, keep: int, concurrency: int) -> int:
    """The least a client can do with imgtag's safety: re-check each tag before its delete.

    Like :func:`minimal_client` (one tag list, a HEAD per tag, a numeric sort), then for
    each doomed digest, highest tag first (imgtag's order, so both send the same requests
    in the same order), a HEAD of every tag on it right before its DELETE by digest,
    skipped when a tag moved since the listing: compare-and-delete, as imgtag does. HEADs,
    re-checks and DELETEs on ``concurrency`` threads over one pooled session. It leaves out
    the delete-support probe and the re-HEAD of the kept tags (6 requests of imgtag's
    ~2,000).
    """
    host, _, repository = image.partition("/")
    base = f"http://{host}/v2/{repository}"
    session = pooled_session(concurrency)
    listing = session.get(f"{base}/tags/list", timeout=60)
    listing.raise_for_status()
    tags = [t for t in listing.json().get("tags") or [] if tag_key(t) is not None]

    def head(tag: str) -> tuple[str, str | None]:
        resp = session.head(
            f"{base}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}, timeout=60
        )
        if resp.status_code == 404:  # gone since the listing
            return tag, None
        resp.raise_for_status()
        return tag, resp.headers["Docker-Content-Digest"]

    def recheck_and_delete(item: tuple[str, list[str]]) -> bool:
        digest, on_it = item
        if any(head(tag)[1] != digest for tag in on_it):
            return False  # moved since planning: not this run's to delete
        resp = session.delete(f"{base}/manifests/{digest}", timeout=60)
        if resp.status_code not in (200, 202, 404):
            resp.raise_for_status()
        return True

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        digests = {t: d for t, d in pool.map(head, tags) if d is not None}
        ordered = sorted(digests, key=_key, reverse=True)
        kept = {digests[t] for t in ordered[:keep]}
        groups: dict[str, list[str]] = {}  # insertion order: highest tag first
        for tag in ordered[keep:]:
            if digests[tag] not in kept:  # never a digest a kept tag is on
                groups.setdefault(digests[tag], []).append(tag)
        done = sum(pool.map(recheck_and_delete, groups.items()))
    print(
        f"{image}: {len(tags)} tags, deleted {done} digests after re-checking "
        f"{sum(map(len, groups.values()))} tags, kept {min(keep, len(tags))}"
    )
    return 0


# --------------------------------------------------------------------------- registry set-up


def _layer() -> tuple[bytes, str]:
    """A gzip tar with one small file, and its diff id (the uncompressed tar's digest)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = b"imgtag prune benchmark\n"
        info = tarfile.TarInfo("bench.txt")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0), "sha256:" + _sha256(raw.getvalue())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Registry:
    """The few registry calls the benchmark itself needs, over one pooled session."""

    def __init__(self, host: str, workers: int) -> None:
        self.host = host
        self.root = f"http://{host}/v2"
        self.session = pooled_session(workers)

    def check(self) -> None:
        try:
            resp = self.session.get(f"{self.root}/", timeout=10)
        except requests.RequestException as exc:
            raise BenchError(f"the registry {self.host} does not answer over HTTP: {exc}") from None
        if resp.status_code != 200:
            raise BenchError(
                f"the registry {self.host} answered {resp.status_code} on /v2/: the benchmark "
                "needs a plain-HTTP, anonymous registry (the bed's `plain` one)"
            )

    def upload_blob(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + _sha256(data)
        start = self.session.post(f"{self.root}/{repository}/blobs/uploads/", timeout=60)
        _expect(start, 202, f"starting a blob upload to {repository}")
        location = urljoin(start.url, start.headers["Location"])
        sep = "&" if "?" in location else "?"
        done = self.session.put(
            f"{location}{sep}digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=60,
        )
        _expect(done, 201, f"uploading a blob to {repository}")
        return digest

    def put_manifest(self, repository: str, tag: str, raw: bytes) -> str:
        resp = self.session.put(
            f"{self.root}/{repository}/manifests/{tag}",
            data=raw,
            headers={"Content-Type": DOCKER_MANIFEST},
            timeout=60,
        )
        _expect(resp, 201, f"pushing {repository}:{tag}")
        return str(resp.headers.get("Docker-Content-Digest", ""))

    def tags(self, repository: str) -> list[str]:
        resp = self.session.get(f"{self.root}/{repository}/tags/list", timeout=60)
        if resp.status_code == 404:
            return []
        _expect(resp, 200, f"listing the tags of {repository}")
        return list(resp.json().get("tags") or [])

    def digest(self, repository: str, ref: str) -> str | None:
        resp = self.session.head(
            f"{self.root}/{repository}/manifests/{ref}",
            headers={"Accept": MANIFEST_ACCEPT},
            timeout=60,
        )
        if resp.status_code == 404:
            return None
        _expect(resp, 200, f"checking {repository}:{ref}")
        return str(resp.headers.get("Docker-Content-Digest", ""))


def _expect(resp: requests.Response, status: int, doing: str) -> None:
    if resp.status_code != status:
        raise BenchError(f"{doing}: the registry answered {resp.status_code}: {resp.text[:200]}")


def seed(
    registry: Registry,
    repositories: Sequence[str],
    tags: Sequence[str],
    nonce: str,
    workers: int,
) -> dict[str, str]:
    """Push ``tags`` into every repository, the same image per tag everywhere; return the
    digest of each tag. Images differ per tag (a config of its own) and per ``nonce``."""
    layer, diff_id = _layer()
    for repository in repositories:
        registry.upload_blob(repository, layer)
    layer_ref = {
        "mediaType": DOCKER_LAYER,
        "digest": "sha256:" + _sha256(layer),
        "size": len(layer),
    }

    def one(tag: str) -> tuple[str, str]:
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": "2026-01-01T00:00:00Z",
                "config": {"Labels": {"bench.tag": tag, "bench.nonce": nonce}},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            },
            sort_keys=True,
        ).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {
                    "mediaType": DOCKER_CONFIG,
                    "digest": "sha256:" + _sha256(config),
                    "size": len(config),
                },
                "layers": [layer_ref],
            },
            sort_keys=True,
        ).encode()
        expected = "sha256:" + _sha256(manifest)
        for repository in repositories:
            registry.upload_blob(repository, config)
            answered = registry.put_manifest(repository, tag, manifest)
            if answered and answered != expected:
                raise BenchError(f"{repository}:{tag}: the registry stored {answered}")
        return tag, expected

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, tags))


def verify(registry: Registry, repository: str, kept: dict[str, str], who: str) -> None:
    """The repository holds exactly the ``kept`` tags, each still on its digest."""
    left = sorted(registry.tags(repository), key=lambda t: tag_key(t) or (), reverse=True)
    if set(left) != set(kept):
        shown = ", ".join(left[:8]) + (f", ... ({len(left)} in all)" if len(left) > 8 else "")
        raise BenchError(
            f"after {who}, {repository} holds [{shown}] instead of exactly "
            f"[{', '.join(kept)}]: the run is meaningless, see its output"
        )
    for tag, digest in kept.items():
        if registry.digest(repository, tag) != digest:
            raise BenchError(f"after {who}, {repository}:{tag} no longer points at {digest}")


# --------------------------------------------------------------------------- the bed


@dataclass
class Bed:
    registry: str
    started_here: bool
    # The registry's pid when it is ours: its CPU time per contender is then reported.
    registry_pid: int | None = None


def process_cpu(pid: int | None) -> float | None:
    """User + system CPU seconds of a running process, from /proc (Linux), or None."""
    if pid is None:
        return None
    try:
        # The command name (field 2) may hold spaces: the fields after it start past ")".
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def open_bed(args: argparse.Namespace) -> Iterator[Bed]:
    registry = args.registry or os.environ.get("IMGTAG_TESTBED_PLAIN")
    if registry:
        log(f"using the running registry {registry}")
        yield Bed(registry, started_here=False)
        return
    with started_bed() as bed:
        yield Bed(bed.plain.host, started_here=True, registry_pid=bed.plain.pid)


# --------------------------------------------------------------------------- contenders


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(DROPPED_ENV_PREFIXES) and k not in DROPPED_ENV
    }


@dataclass
class Timing:
    wall: float
    # The contender's whole process tree (skopeo: the shell and every skopeo it ran).
    client_cpu: float
    # The registry's CPU time meanwhile, when its pid is known.
    registry_cpu: float | None


@dataclass
class Contenders:
    imgtag: list[str]
    skopeo: str | None
    keep: int
    concurrency: int
    env: dict[str, str]
    workdir: Path
    registry_pid: int | None
    samples: dict[str, list[Timing]] = field(default_factory=lambda: {n: [] for n in NAMES})
    outputs: dict[str, str] = field(default_factory=dict)

    def argv(self, name: str, image: str, doomed: Sequence[str]) -> list[str]:
        if name == "imgtag":
            return [
                *self.imgtag, "prune", image,
                "--keep-last", str(self.keep), "--keep-per-version", "0",
                "--apply", "--concurrency", str(self.concurrency),
            ]  # fmt: skip
        if name in ("minimal", "rechecking"):
            return [
                sys.executable, str(THIS_SCRIPT), f"--{name}-client", image,
                "--keep", str(self.keep), "--concurrency", str(self.concurrency),
            ]  # fmt: skip
        assert self.skopeo is not None
        # The tags come from the benchmark, not from `skopeo list-tags | sort -V | head`:
        # that listing is left out of skopeo's time, which only favours skopeo.
        return ["sh", "-c", SKOPEO_LOOP, "sh", self.skopeo, image, *doomed]

    def run(self, name: str, image: str, doomed: Sequence[str], label: str) -> Timing:
        argv = self.argv(name, image, doomed)
        out_file = self.workdir / f"{label}-{name}.out"
        # Everything to one file: a pipe would have to be drained while we time.
        with open(out_file, "wb") as out:
            cpu_before, registry_before = children_cpu(), process_cpu(self.registry_pid)
            started = time.perf_counter()
            proc = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir
            )
            elapsed = time.perf_counter() - started
            client_cpu = children_cpu() - cpu_before
            registry_after = process_cpu(self.registry_pid)
        text = out_file.read_text(errors="replace")
        if proc.returncode != 0:
            shown = shlex.join(argv[:12]) + (" ..." if len(argv) > 12 else "")
            tail = "\n    ".join(text.strip().splitlines()[-8:]) or "(no output)"
            raise BenchError(f"{LABELS[name]} exited with {proc.returncode} ({shown}):\n    {tail}")
        lines = text.strip().splitlines()
        self.outputs[name] = lines[-1] if lines else "(no output)"
        registry_cpu = (
            registry_after - registry_before
            if registry_after is not None and registry_before is not None
            else None
        )
        return Timing(elapsed, client_cpu, registry_cpu)


# --------------------------------------------------------------------------- report


def summarise(samples: dict[str, list[Timing]]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name, timings in samples.items():
        if not timings:
            continue
        walls = [t.wall for t in timings]
        registry = [t.registry_cpu for t in timings if t.registry_cpu is not None]
        results[name] = {
            "median_s": round(statistics.median(walls), 3),
            "min_s": round(min(walls), 3),
            "max_s": round(max(walls), 3),
            "samples_s": [round(v, 3) for v in walls],
            "client_cpu_median_s": round(statistics.median(t.client_cpu for t in timings), 2),
            "registry_cpu_median_s": round(statistics.median(registry), 2) if registry else None,
        }
    return results


def print_report(doc: dict[str, Any]) -> None:
    setup = doc["setup"]
    print(
        f"imgtag prune benchmark: {setup['tags']} tags per repository, keep {setup['keep']} "
        f"(delete {setup['deletes']}), concurrency {setup['concurrency']}, registry "
        f"{setup['registry']}"
    )
    print(f"rounds: {doc['rounds']} (skopeo: {doc['skopeo_rounds']}), seeding median "
          f"{doc['seed_median_s']:.1f} s per round")  # fmt: skip
    print()
    print(
        f"{'':22} {'median':>9} {'min':>9} {'max':>9} {'per delete':>11} "
        f"{'client CPU':>11} {'registry CPU':>13}  n"
    )
    for name, r in doc["results"].items():
        per_delete = r["median_s"] / setup["deletes"] * 1000
        registry_cpu = r["registry_cpu_median_s"]
        shown_registry = "-" if registry_cpu is None else f"{registry_cpu:.2f}s"
        print(
            f"{LABELS[name]:22} {r['median_s']:>8.2f}s {r['min_s']:>8.2f}s {r['max_s']:>8.2f}s "
            f"{per_delete:>8.1f} ms {r['client_cpu_median_s']:>10.2f}s {shown_registry:>13}  "
            f"{len(r['samples_s'])}"
        )
    print()
    for peer, ratio in doc["ratios"].items():
        target = doc["targets"].get(peer)
        shown = "-" if ratio is None else f"{ratio:.3f}"
        if target is None:
            print(f"imgtag / {LABELS[peer]:20} {shown:>7}   (information: no target)")
            continue
        verdict = (
            "not run" if ratio is None else ("target met" if target["met"] else "TARGET MISSED")
        )
        print(f"imgtag / {LABELS[peer]:20} {shown:>7}   (target <= {target['max']}: {verdict})")
    for peer, paired in doc["paired_ratios"].items():
        if paired:
            shown = ", ".join(f"{p:.3f}" for p in paired)
            print(f"imgtag / {LABELS[peer]} in the same round: {shown}")
    print()
    for name, line in doc["outputs"].items():
        print(f"last output of {LABELS[name]}: {line}")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time imgtag prune --apply against a re-checking client, a minimal client "
        "and a skopeo loop."
    )
    p.add_argument("--registry", help="HOST:PORT of a running plain-HTTP registry")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    p.add_argument("--warmup", type=int, default=0, help="untimed rounds first (default 0)")
    p.add_argument(
        "--skopeo-rounds",
        type=int,
        default=1,
        help="in how many of the timed rounds (the first ones) skopeo runs (default 1)",
    )
    p.add_argument("--skip-skopeo", action="store_true", help="leave the skopeo loop out")
    p.add_argument("--tags", type=int, default=1000, help="tags per repository (default 1000)")
    p.add_argument("--keep", type=int, default=5, help="tags to keep (default 5)")
    p.add_argument(
        "--concurrency", type=int, default=8, help="threads of every contender but skopeo (8)"
    )
    p.add_argument("--seed-workers", type=int, default=8, help="seeding threads (default 8)")
    p.add_argument("--imgtag", help="how to run imgtag (default: the script next to Python)")
    p.add_argument("--skopeo", help="the skopeo binary (default: skopeo on PATH)")
    p.add_argument("--workdir", type=Path, help="keep the contenders' outputs here")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument(
        "--minimal-client",
        metavar="HOST/REPO",
        help="internal: run the minimal client on HOST/REPO (with --keep, --concurrency)",
    )
    p.add_argument(
        "--rechecking-client",
        metavar="HOST/REPO",
        help="internal: run the re-checking client on HOST/REPO (with --keep, --concurrency)",
    )
    args = p.parse_args(argv)
    if args.keep < 1 or args.concurrency < 1 or args.seed_workers < 1:
        p.error("--keep, --concurrency and --seed-workers must be >= 1")
    internal = args.minimal_client is not None or args.rechecking_client is not None
    if not internal and (
        args.rounds < 1 or args.warmup < 0 or args.skopeo_rounds < 0 or args.tags <= args.keep
    ):
        p.error("--rounds must be >= 1, --warmup and --skopeo-rounds >= 0, --tags > --keep")
    return args


def bench(args: argparse.Namespace, bed: Bed, workdir: Path) -> int:
    imgtag = shlex.split(args.imgtag) if args.imgtag else [find_tool("imgtag") or ""]
    if not imgtag[0]:
        raise BenchError("imgtag not found next to this Python or on PATH: pip install -e .")
    skopeo: str | None = None
    skopeo_version = None
    if not args.skip_skopeo and args.skopeo_rounds:
        skopeo = args.skopeo or shutil.which("skopeo")
        if not skopeo:
            raise BenchError("skopeo not found: apt-get install skopeo, or pass --skip-skopeo")
        proc = subprocess.run([skopeo, "--version"], capture_output=True, text=True, check=False)
        skopeo_version = proc.stdout.strip()
    registry = Registry(bed.registry, args.seed_workers)
    registry.check()

    tags = tag_names(args.tags)
    ordered = sorted(tags, key=_key, reverse=True)
    kept_tags, doomed = ordered[: args.keep], sorted(ordered[args.keep :], key=_key)
    contenders = Contenders(
        imgtag, skopeo, args.keep, args.concurrency, clean_env(), workdir, bed.registry_pid
    )
    run_id = time.strftime("r%Y%m%d-%H%M%S")
    log(f"{len(tags)} tags per repository, keeping {', '.join(kept_tags)}; outputs in {workdir}")

    seed_times: list[float] = []
    paired: dict[str, list[float]] = {peer: [] for peer in PEERS}
    total = args.warmup + args.rounds
    for r in range(total):
        timed = r >= args.warmup
        with_skopeo = skopeo is not None and timed and r - args.warmup < args.skopeo_rounds
        names = [n for n in NAMES if n != "skopeo" or with_skopeo]
        # Rotate, so each contender runs first, second and last in turn.
        names = names[r % len(names) :] + names[: r % len(names)]
        namespace = f"bench/{run_id}-{r + 1}"
        repos = {n: f"{namespace}/{REPO_SUFFIX[n]}" for n in names}
        started = time.perf_counter()
        digests = seed(registry, list(repos.values()), tags, f"{run_id}-{r + 1}", args.seed_workers)
        seed_times.append(time.perf_counter() - started)
        log(f"round {r + 1}/{total}: seeded {', '.join(repos.values())} in {seed_times[-1]:.1f} s")
        kept = {t: digests[t] for t in kept_tags}
        this_round: dict[str, Timing] = {}
        for name in names:
            # Flush what seeding and the last contender wrote, outside the timed window.
            os.sync()
            image = f"{bed.registry}/{repos[name]}"
            timing = contenders.run(name, image, doomed, f"round{r + 1}")
            verify(registry, repos[name], kept, LABELS[name])
            this_round[name] = timing
            log(
                f"  {LABELS[name]}: {timing.wall:.2f} s "
                f"({timing.wall / len(doomed) * 1000:.1f} ms/delete, "
                f"client CPU {timing.client_cpu:.2f} s"
                + (
                    f", registry CPU {timing.registry_cpu:.2f} s)"
                    if timing.registry_cpu is not None
                    else ")"
                )
            )
        same_round = {
            peer: this_round["imgtag"].wall / this_round[peer].wall
            for peer in PEERS
            if peer in this_round
        }
        log(
            f"  round {r + 1}: "
            + ", ".join(f"imgtag / {LABELS[p]} {v:.3f}" for p, v in same_round.items())
            + ("" if timed else " (warm-up, not counted)")
        )
        if timed:
            for name, timing in this_round.items():
                contenders.samples[name].append(timing)
            for peer, ratio in same_round.items():
                paired[peer].append(round(ratio, 3))

    results = summarise(contenders.samples)
    own = results["imgtag"]["median_s"]
    ratios: dict[str, float | None] = {
        peer: round(own / results[peer]["median_s"], 3) if peer in results else None
        for peer in PEERS
    }
    doc = {
        "benchmark": "prune",
        "setup": {
            "registry": bed.registry,
            "bed_started_here": bed.started_here,
            "imgtag": imgtag,
            "skopeo": skopeo,
            "skopeo_version": skopeo_version,
            "tags": len(tags),
            "keep": args.keep,
            "deletes": len(doomed),
            "kept_tags": kept_tags,
            "concurrency": args.concurrency,
            "repositories": f"bench/{run_id}-ROUND/{{a,b,c,d}}",
        },
        "rounds": args.rounds,
        "warmup": args.warmup,
        "skopeo_rounds": len(contenders.samples["skopeo"]),
        "seed_median_s": round(statistics.median(seed_times), 2),
        "results": results,
        "ratios": ratios,
        "paired_ratios": paired,
        "targets": {
            peer: {"ratio": f"imgtag/{peer}", "max": limit, "met": _met(ratios[peer], limit)}
            for peer, limit in TARGET_MAX.items()
        },
        "outputs": contenders.outputs,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_report(doc)
    return 0


def _met(ratio: float | None, limit: float) -> bool | None:
    return None if ratio is None else ratio <= limit


def in_workdir(args: argparse.Namespace, body: Callable[[Path], int]) -> int:
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return body(Path(tempfile.mkdtemp(prefix="bench-prune-", dir=args.workdir)))
    with tempfile.TemporaryDirectory(prefix="imgtag-bench-prune-") as tmp:
        return body(Path(tmp))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for image, client, label in (
        (args.minimal_client, minimal_client, "minimal client"),
        (args.rechecking_client, rechecking_client, "re-checking client"),
    ):
        if image is not None:
            try:
                return client(image, args.keep, args.concurrency)
            except (requests.RequestException, KeyError, ValueError) as exc:
                log(f"{label}: {exc}")
                return 1
    try:
        with open_bed(args) as bed:
            return in_workdir(args, lambda work: bench(args, bed, work))
    except BenchError as exc:
        log(f"bench_prune.py: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
