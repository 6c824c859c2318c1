#!/usr/bin/env python3
"""Benchmark ``imgtag prune REG/path/* --apply`` over many repositories against the least
a client can do with the same re-check, in the same run.

What it measures: the wall-clock time to cut 20 repositories of 500 tags each (every tag
on a digest of its own) down to their 5 highest tags, as one complete process, two ways:

- ``imgtag prune REG/bench/RUN/imgtag/* --keep-last 5 --keep-per-version 0 --apply
  --concurrency 8`` (the repositories listed through ``_catalog``);
- the least a client can do with imgtag's safety (``--rechecking-client``, a function of
  this file run as a subprocess so that interpreter start-up counts on both sides): it is
  handed the 20 repository names (no catalog listing), then on ONE pool of 8 threads over
  one pooled session: every tag list, a HEAD per tag, a numeric sort per repository, then
  for every doomed digest of every repository a HEAD re-check right before its DELETE by
  digest, taken round-robin over the repositories (deletes in different repositories do
  not wait on each other's tag scans). Everything in flight at once: the least wall time
  8 threads can give.

Identical repositories per contender (the seeding of ``bench_prune.py``), a new path per
round, the order rotating each round. After each contender every repository must hold
exactly its 5 highest tags on their digests, or the run stops (exit 1). Medians, the ratio
``imgtag / re-checking`` of the medians and per round, and the target (<= 1.10). The
script reports and never asserts a timing.

Usage: ``sudo python benchmarks/bench_prune_many.py`` (starts the bed of tests/testbed.py),
or ``--registry HOST:PORT`` for a running plain registry; ``--rounds``, ``--repos``,
``--tags``, ``--json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from bench_prune import (
    MANIFEST_ACCEPT,
    Registry,
    _key,
    clean_env,
    in_workdir,
    open_bed,
    pooled_session,
    seed,
    tag_key,
    tag_names,
    verify,
)
from benchlib import BenchError, find_tool, log

THIS_SCRIPT = Path(__file__).resolve()
TARGET = 1.10
NAMES = ("imgtag", "rechecking")


def rechecking_client(host: str, repositories: Sequence[str], keep: int, threads: int) -> int:
    """Keep the ``keep`` highest tags of each repository, re-checking before each delete,
    with every request of every repository on one pool of ``threads``."""
    session = pooled_session(threads)
    root = f"http://{host}/v2"

    def listing(repo: str) -> tuple[str, list[str]]:
        resp = session.get(f"{root}/{repo}/tags/list", timeout=60)
        resp.raise_for_status()
        return repo, [t for t in resp.json().get("tags") or [] if tag_key(t) is not None]

    def head(item: tuple[str, str]) -> tuple[str, str, str | None]:
        repo, tag = item
        resp = session.head(
            f"{root}/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}, timeout=60
        )
        if resp.status_code == 404:
            return repo, tag, None
        resp.raise_for_status()
        return repo, tag, resp.headers["Docker-Content-Digest"]

    def recheck_and_delete(item: tuple[str, str, list[str]]) -> bool:
        repo, digest, on_it = item
        if any(head((repo, tag))[2] != digest for tag in on_it):
            return False  # moved since planning
        resp = session.delete(f"{root}/{repo}/manifests/{digest}", timeout=60)
        if resp.status_code not in (200, 202, 404):
            resp.raise_for_status()
        return True

    with ThreadPoolExecutor(max_workers=threads) as pool:
        tags = dict(pool.map(listing, repositories))
        heads = list(pool.map(head, [(r, t) for r in repositories for t in tags[r]]))
        per_repo: list[list[tuple[str, str, list[str]]]] = []
        for repo in repositories:
            digests = {t: d for r, t, d in heads if r == repo and d is not None}
            ordered = sorted(digests, key=_key, reverse=True)
            kept = {digests[t] for t in ordered[:keep]}
            groups: dict[str, list[str]] = {}
            for tag in ordered[keep:]:
                if digests[tag] not in kept:
                    groups.setdefault(digests[tag], []).append(tag)
            per_repo.append([(repo, d, on_it) for d, on_it in groups.items()])
        # Round-robin over the repositories: Distribution scans a repository's tags on every
        # delete by digest, so eight deletes in eight repositories beat eight in one.
        work = [item for batch in itertools.zip_longest(*per_repo) for item in batch if item]
        done = sum(pool.map(recheck_and_delete, work))
    print(f"{len(repositories)} repositories: deleted {done} digests")
    return 0


def run(argv: list[str], env: dict[str, str], out_file: Path) -> float:
    with open(out_file, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
        elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n    ".join(out_file.read_text(errors="replace").strip().splitlines()[-8:])
        raise BenchError(f"{shlex.join(argv[:8])} ... exited {proc.returncode}:\n    {tail}")
    return elapsed


def bench(args: argparse.Namespace, host: str, workdir: Path) -> int:
    imgtag = shlex.split(args.imgtag) if args.imgtag else [find_tool("imgtag") or ""]
    if not imgtag[0]:
        raise BenchError("imgtag not found next to this Python or on PATH: pip install -e .")
    registry = Registry(host, args.seed_workers)
    registry.check()
    tags = tag_names(args.tags)
    kept_tags = sorted(tags, key=_key, reverse=True)[: args.keep]
    env = clean_env()
    run_id = time.strftime("m%Y%m%d-%H%M%S")
    samples: dict[str, list[float]] = {n: [] for n in NAMES}
    ratios: list[float] = []
    for r in range(args.rounds):
        base = f"bench/{run_id}-{r + 1}"
        repos = {n: [f"{base}/{n}/r{i:02d}" for i in range(args.repos)] for n in NAMES}
        started = time.perf_counter()
        everything = [repo for n in NAMES for repo in repos[n]]
        digests = seed(registry, everything, tags, f"{run_id}-{r + 1}", args.seed_workers)
        log(f"round {r + 1}/{args.rounds}: seeded {len(everything)} repositories of "
            f"{len(tags)} tags in {time.perf_counter() - started:.1f} s")  # fmt: skip
        kept = {t: digests[t] for t in kept_tags}
        order = NAMES if r % 2 == 0 else tuple(reversed(NAMES))
        this: dict[str, float] = {}
        for name in order:
            os.sync()
            if name == "imgtag":
                argv = [
                    *imgtag, "prune", f"{host}/{base}/imgtag/*",
                    "--keep-last", str(args.keep), "--keep-per-version", "0",
                    "--apply", "--concurrency", str(args.concurrency),
                ]  # fmt: skip
            else:
                argv = [
                    sys.executable, str(THIS_SCRIPT), "--rechecking-client", host,
                    "--keep", str(args.keep), "--concurrency", str(args.concurrency),
                    *repos[name],
                ]  # fmt: skip
            this[name] = run(argv, env, workdir / f"{r + 1}-{name}.out")
            for repo in repos[name]:
                verify(registry, repo, kept, name)
            samples[name].append(this[name])
        ratios.append(this["imgtag"] / this["rechecking"])
        log(f"round {r + 1}: imgtag {this['imgtag']:.2f} s, re-checking "
            f"{this['rechecking']:.2f} s, ratio {ratios[-1]:.3f}")  # fmt: skip
    medians = {n: statistics.median(v) for n, v in samples.items()}
    ratio = medians["imgtag"] / medians["rechecking"]
    doc: dict[str, Any] = {
        "repositories": args.repos,
        "tags_per_repository": args.tags,
        "keep": args.keep,
        "concurrency": args.concurrency,
        "samples_s": {n: [round(v, 3) for v in s] for n, s in samples.items()},
        "median_s": {n: round(v, 3) for n, v in medians.items()},
        "ratio": round(ratio, 3),
        "ratio_per_round": [round(v, 3) for v in ratios],
        "target": TARGET,
        "met": ratio <= TARGET,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{args.repos} repositories x {args.tags} tags, keep {args.keep}, "
              f"--concurrency {args.concurrency}, {args.rounds} rounds")  # fmt: skip
        print(f"  imgtag prune PATH/* --apply   median {medians['imgtag']:.2f} s")
        print(f"  re-checking client, 8 threads median {medians['rechecking']:.2f} s")
        print(f"  ratio {ratio:.3f} (per round: {', '.join(f'{v:.3f}' for v in ratios)}); "
              f"target <= {TARGET:.2f}: {'met' if doc['met'] else 'NOT met'}")  # fmt: skip
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", help="a running plain-HTTP registry (HOST:PORT)")
    parser.add_argument("--imgtag", help="the imgtag command (default: imgtag on PATH)")
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--tags", type=int, default=500)
    parser.add_argument("--keep", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed-workers", type=int, default=16)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rechecking-client", metavar="HOST")
    parser.add_argument("repositories", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rechecking_client:
        try:
            return rechecking_client(
                args.rechecking_client, args.repositories, args.keep, args.concurrency
            )
        except (requests.RequestException, KeyError, ValueError) as exc:
            log(f"re-checking client: {exc}")
            return 1
    try:
        with open_bed(args) as bed:
            return in_workdir(args, lambda work: bench(args, bed.registry, work))
    except BenchError as exc:
        log(f"bench_prune_many.py: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
