#!/usr/bin/env python3
"""Benchmark ``imgtag analyze IMAGE`` against ``dive --ci IMAGE`` on one local image.

What it measures: the wall-clock time of one complete process each, in the same run, on the
same engine and image:

- ``imgtag analyze IMAGE --format json --base N``;
- ``dive IMAGE --ci --source docker`` with every CI rule disabled (so its exit code says
  whether it worked, not whether the image passed).

Both get the image from the engine's ``docker save`` stream and parse it as it arrives, so
the engine's own cost is in both figures (``bench_analyze_floor.py`` times the floor too).

How:

1. The engine: ``DOCKER_HOST`` (e.g. from ``eval "$(python tests/testbed.py up)"``); without
   it the script starts the bed of ``tests/testbed.py`` (root only) and stops it at the end.
2. The image: the ``IMAGE`` argument, or with ``--build`` (the default when no IMAGE is given
   or the bed was started here) the set-up of the squash benchmark (benchmarks/README.md):
   ``FROM scratch`` + busybox, then 20 layers that write and delete 10 x 20 MiB of random
   bytes (~200 MiB).
3. N rounds (``--rounds``, default 5) after one warm-up round each; the order alternates every
   round so that drift hits both alike. Medians, the ratio ``imgtag / dive`` of the medians and
   per round, and both tools' figures (efficiency, and imgtag's wasted bytes against dive's,
   which counts a file written twice twice) are printed; ``--json`` for machines.

The script reports and never asserts timings: it exits 0 unless a command failed or the bed
did not start (1). Standard library only (plus the docker SDK for ``--build``).

Usage: ``python benchmarks/bench_analyze.py [IMAGE] [--rounds 5] [--base N] [--json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import BenchError, find_tool, log, started_bed

BUSYBOX = Path("/bin/busybox")
DEMO_IMAGE = "bench/analyze:1"
DEMO_FILES = 10
DEMO_MIB = 20


@dataclass
class Timed:
    argv: list[str]
    returncode: int
    elapsed: float
    stdout: str
    stderr: str


def run(argv: Sequence[str], env: dict[str, str]) -> Timed:
    started = time.perf_counter()
    proc = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    return Timed(list(argv), proc.returncode, elapsed, proc.stdout, proc.stderr)


def check(result: Timed, what: str) -> Timed:
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip())[-800:]
        raise BenchError(f"{what} exited with {result.returncode}: {tail}")
    return result


def demo_dockerfile() -> str:
    lines = ["FROM scratch", "COPY busybox /busybox"]
    for i in range(DEMO_FILES):
        write = f"/busybox dd if=/dev/urandom of=/f{i} bs=1048576 count={DEMO_MIB}"
        lines.append("RUN " + json.dumps(["/busybox", "sh", "-c", write]))
        lines.append("RUN " + json.dumps(["/busybox", "rm", f"/f{i}"]))
    return "\n".join(lines) + "\n"


def build_demo(docker_host: str, tag: str) -> None:
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=600)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-analyze-") as ctx:
            shutil.copy2(BUSYBOX, Path(ctx) / "busybox")
            (Path(ctx) / "Dockerfile").write_text(demo_dockerfile())
            log(f"building {tag}: {2 * DEMO_FILES} layers writing and deleting "
                f"{DEMO_FILES} x {DEMO_MIB} MiB")  # fmt: skip
            client.images.build(path=ctx, tag=tag, rm=True, forcerm=True)
    finally:
        client.close()


@contextlib.contextmanager
def engine() -> Iterator[str]:
    """DOCKER_HOST, or a bed of tests/testbed.py started (and stopped) here."""
    if os.environ.get("DOCKER_HOST"):
        yield os.environ["DOCKER_HOST"]
        return
    with started_bed() as bed:
        yield str(bed.engine.host)


def contenders(image: str, base: int, imgtag: str, dive: str) -> dict[str, list[str]]:
    return {
        "imgtag": [imgtag, "analyze", image, "--format", "json", "--base", str(base)],
        "dive": [dive, image, "--ci", "--source", "docker", "--lowestEfficiency", "disabled",
                 "--highestWastedBytes", "disabled", "--highestUserWastedPercent", "disabled"],
    }  # fmt: skip


def dive_figures(stdout: str) -> dict[str, float]:
    """efficiency (0..1) and wastedBytes from dive's CI summary lines."""
    figures: dict[str, float] = {}
    for line in stdout.splitlines():
        text = line.strip()
        if text.startswith("efficiency:"):
            figures["efficiency"] = float(text.split()[1]) / 100
        elif text.startswith("wastedBytes:"):
            figures["wasted_bytes"] = float(text.split()[1])
    return figures


def bench(image: str, rounds: int, base: int, docker_host: str) -> dict[str, Any]:
    imgtag, dive = find_tool("imgtag"), find_tool("dive")
    if imgtag is None or dive is None:
        raise BenchError("imgtag and dive must be installed: pip install -e '.[bench]'")
    env = {**os.environ, "DOCKER_HOST": docker_host, "CI": "false"}
    argv = contenders(image, base, imgtag, dive)
    times: dict[str, list[float]] = {"imgtag": [], "dive": []}
    last: dict[str, Timed] = {}
    for name in ("imgtag", "dive"):  # warm-up: page cache, engine metadata
        check(run(argv[name], env), name)
    for round_no in range(rounds):
        order = ["imgtag", "dive"] if round_no % 2 == 0 else ["dive", "imgtag"]
        for name in order:
            last[name] = check(run(argv[name], env), name)
            times[name].append(last[name].elapsed)
        log(f"round {round_no + 1}/{rounds}: imgtag {times['imgtag'][-1]:.3f} s, "
            f"dive {times['dive'][-1]:.3f} s")  # fmt: skip
    ours = json.loads(last["imgtag"].stdout)
    theirs = dive_figures(last["dive"].stdout)
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    return {
        "image": image,
        "rounds": rounds,
        "seconds": {name: [round(t, 4) for t in samples] for name, samples in times.items()},
        "median_s": {name: round(m, 4) for name, m in medians.items()},
        "ratio": round(medians["imgtag"] / medians["dive"], 3),
        "ratio_per_round": [
            round(a / b, 3) for a, b in zip(times["imgtag"], times["dive"], strict=True)
        ],
        "imgtag": {
            "size": ours["size"],
            "efficiency": ours["efficiency"],
            "wasted_bytes": ours["wasted_bytes"],
            "layers": len(ours["layers"]),
        },
        "dive": theirs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", nargs="?", help=f"a local image [default: {DEMO_IMAGE}, built]")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--base", type=int, default=1, help="imgtag's --base (default 1, dive's)")
    parser.add_argument("--build", action="store_true", help=f"build {DEMO_IMAGE} first")
    parser.add_argument("--json", action="store_true", help="the result as JSON on stdout")
    args = parser.parse_args(argv)
    try:
        with engine() as docker_host:
            image = args.image or DEMO_IMAGE
            if args.build or args.image is None or not os.environ.get("DOCKER_HOST"):
                build_demo(docker_host, image)
            result = bench(image, args.rounds, args.base, docker_host)
    except BenchError as exc:
        log(f"bench_analyze: {exc}")
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        med = result["median_s"]
        print(f"image: {image} ({result['imgtag']['layers']} layers, "
              f"{result['imgtag']['size'] / 2**20:.1f} MiB of files)")  # fmt: skip
        print(f"imgtag analyze: {med['imgtag']:.3f} s (median of {args.rounds})")
        print(f"dive --ci:      {med['dive']:.3f} s")
        print(f"ratio imgtag/dive: {result['ratio']:.3f}  per round: {result['ratio_per_round']}")
        print(f"efficiency: imgtag {result['imgtag']['efficiency']:.6f}, "
              f"dive {result['dive'].get('efficiency', float('nan')):.6f}")  # fmt: skip
        print(f"wasted bytes: imgtag {result['imgtag']['wasted_bytes']}, "
              f"dive {int(result['dive'].get('wasted_bytes', -1))}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
