#!/usr/bin/env python3
"""Benchmark ``imgtag analyze`` against the engine's export floor and against ``dive --ci``.

The set-ups of the performance table (benchmarks/README.md), each a local image built here:

- ``large``: ``FROM scratch`` + busybox, then 24 COPY layers of one 6 MiB random file each
  (~150 MB in 25 layers of large files);
- ``files``: busybox, then 10 COPY layers of 3,000 random files of 11 KiB each (~330 MB in
  30,000 files).

Contenders, one complete process each, interleaved round by round (the order rotates):

- ``floor``: ``docker save IMAGE > /dev/null``, the least any reader of the engine can take;
- ``imgtag``: ``imgtag analyze IMAGE --format json --base 1``;
- ``dive``: ``dive IMAGE --ci --source docker`` with every rule disabled;
- with ``--registry HOST:PORT`` (a plain-HTTP, anonymous registry: the bed's
  ``IMGTAG_TESTBED_PLAIN``), the image is pushed there once and
  ``imgtag analyze HOST:PORT/IMAGE --from-registry`` is timed too (``registry``).

Targets: imgtag <= 1.05x the floor on both shapes; ``--from-registry`` <= 0.6x dive on
``large``. Printed: medians, the ratios of the medians and per round, each with its target.
The two analyses (engine and registry) must agree on size and wasted bytes. Reports, never
asserts timings: exit 0 unless a command failed (1).

Usage: ``python benchmarks/bench_analyze_floor.py --shape large|files [--rounds 5]
[--registry HOST:PORT] [--json]``; the engine is ``DOCKER_HOST`` (``eval "$(python
tests/testbed.py up)"``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchlib import BenchError, find_tool, log

BUSYBOX = Path("/bin/busybox")
DOCKER = "/usr/bin/docker"
SHAPES = {
    # name: (layers, files per layer, bytes per file)
    "large": (24, 1, 6 << 20),
    "files": (10, 3000, 11 << 10),
}
TARGETS = {"imgtag/floor": 1.05, "registry/dive": 0.6}


def image_name(shape: str) -> str:
    return f"bench/analyze-{shape}:1"


def build(shape: str, env: dict[str, str]) -> str:
    image = image_name(shape)
    layers, files, size = SHAPES[shape]
    probe = subprocess.run([DOCKER, "image", "inspect", image], env=env, capture_output=True)
    if probe.returncode == 0:
        return image
    with tempfile.TemporaryDirectory(prefix="bench-analyze-") as ctx:
        root = Path(ctx)
        shutil.copy2(BUSYBOX, root / "busybox")
        lines = ["FROM scratch", "COPY busybox /bin/busybox"]
        for layer in range(layers):
            folder = root / f"l{layer}"
            folder.mkdir()
            for n in range(files):
                (folder / f"f{n}").write_bytes(os.urandom(size))
            lines.append(f"COPY l{layer} /data/l{layer}")
        (root / "Dockerfile").write_text("\n".join(lines) + "\n")
        log(f"building {image}: {layers} layers of {files} x {size} bytes")
        subprocess.run([DOCKER, "build", "-q", "-t", image, ctx], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    return image


def timed(argv: Sequence[str], env: dict[str, str], what: str) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"{what} exited {proc.returncode}: {proc.stderr.strip()[-600:]}")
    return elapsed, proc.stdout


def bench(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    imgtag, dive = find_tool("imgtag"), find_tool("dive")
    if imgtag is None or dive is None:
        raise BenchError("imgtag and dive must be installed: pip install -e '.[bench]'")
    image = build(args.shape, env)
    argv: dict[str, list[str]] = {
        "floor": [DOCKER, "save", image],
        "imgtag": [imgtag, "analyze", image, "--format", "json", "--base", "1"],
        "dive": [dive, image, "--ci", "--source", "docker", "--lowestEfficiency", "disabled",
                 "--highestWastedBytes", "disabled", "--highestUserWastedPercent", "disabled"],
    }  # fmt: skip
    if args.registry:
        remote = f"{args.registry}/{image}"
        subprocess.run([DOCKER, "tag", image, remote], env=env, check=True)
        subprocess.run([DOCKER, "push", remote], env=env, check=True, capture_output=True)
        argv["registry"] = [imgtag, "analyze", remote, "--from-registry", "--format", "json",
                            "--base", "1", "--insecure-registry", args.registry]  # fmt: skip
    names = list(argv)
    outputs: dict[str, str] = {}
    for name in names:  # warm-up: page cache, engine metadata
        outputs[name] = timed(argv[name], env, name)[1] if name != "floor" else ""
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(args.rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            if name == "floor":
                started = time.perf_counter()
                subprocess.run(argv[name], env=env, stdout=subprocess.DEVNULL, check=True)
                times[name].append(time.perf_counter() - started)
            else:
                elapsed, outputs[name] = timed(argv[name], env, name)
                times[name].append(elapsed)
        log(f"round {round_no + 1}/{args.rounds}: "
            + ", ".join(f"{n} {times[n][-1]:.3f} s" for n in names))  # fmt: skip
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    ours = json.loads(outputs["imgtag"])
    pairs = [("imgtag", "floor"), ("imgtag", "dive")]
    if args.registry:
        theirs = json.loads(outputs["registry"])
        for key in ("size", "wasted_bytes", "efficiency"):
            if theirs[key] != ours[key]:
                raise BenchError(
                    f"--from-registry says {key} {theirs[key]}, the engine {ours[key]}"
                )
        pairs.append(("registry", "dive"))
    ratios = {f"{a}/{b}": round(medians[a] / medians[b], 3) for a, b in pairs}
    per_round = {
        f"{a}/{b}": [round(x / y, 3) for x, y in zip(times[a], times[b], strict=True)]
        for a, b in pairs
    }
    return {
        "shape": args.shape,
        "image": image,
        "rounds": args.rounds,
        "size": ours["size"],
        "layers": len(ours["layers"]),
        "samples_s": {n: [round(t, 4) for t in s] for n, s in times.items()},
        "median_s": {n: round(m, 4) for n, m in medians.items()},
        "ratios": ratios,
        "ratios_per_round": per_round,
        "targets": {k: v for k, v in TARGETS.items() if k in ratios},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="large")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--registry", help="HOST:PORT of a plain-HTTP registry to push to")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not os.environ.get("DOCKER_HOST"):
        log('bench_analyze_floor: set DOCKER_HOST (eval "$(python tests/testbed.py up)")')
        return 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGTAG_")}
    env["CI"] = "false"
    try:
        result = bench(args, env)
    except (BenchError, subprocess.CalledProcessError) as exc:
        log(f"bench_analyze_floor: {exc}")
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"image: {result['image']} ({result['layers']} layers, "
          f"{result['size'] / 1e6:.0f} MB of files), {args.rounds} rounds")  # fmt: skip
    for name, median in result["median_s"].items():
        print(f"  {name:9} {median:.3f} s (median)")
    for key, ratio in result["ratios"].items():
        target = TARGETS.get(key)
        met = target is not None and ratio <= target
        verdict = "" if target is None else f"  target <= {target}: {'met' if met else 'NOT met'}"
        print(f"ratio {key}: {ratio:.3f}{verdict}  per round: {result['ratios_per_round'][key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
