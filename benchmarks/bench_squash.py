#!/usr/bin/env python3
"""Benchmark ``imgtag squash`` against ``docker-squash``, and ``imgtag analyze`` against dive.

What it measures, in the same run on the same engine and image (benchmarks/README.md's
targets: squash time <= 0.8x docker-squash, size <= 1.0x):

- ``imgtag squash IMAGE --from BASE --tag OUT`` against ``docker-squash -f BASE -t OUT
  IMAGE`` (docker-squash 1.2.2, which saves the image, extracts it to disk, writes the
  squashed layer and a whole new image tar, and loads that): wall-clock time of one complete
  process each, and the resulting image's size as the engine reports it (``docker image
  inspect .Size``; the engine stores layers uncompressed);
- ``imgtag analyze IMAGE --base 1 --format json`` against ``dive IMAGE --ci --source docker``
  (every CI rule disabled), when ``imgtag analyze`` works (else a printed note).

The image: a base ``FROM scratch`` + Debian's static busybox (one layer, its own local image
``bench/squash-base:1``), then ``FROM`` it 20 RUN layers that write 10 MiB of random bytes
each (200 MiB in all) plus 50 small files, and delete every other earlier big file, an
earlier small-file directory, and make one directory opaque: ~100 MiB survive.

How: the engine is ``DOCKER_HOST`` (``eval "$(python tests/testbed.py up)"``), else the
script starts the test bed (root only) and stops it afterwards. One warm-up round, then N
rounds (``--rounds``, default 7); the order alternates every round. Before each squash the
previous results are removed (untimed): a result left behind would let the engine skip
registering the identical layer (its chain ID exists), and the next run would time nothing.
Medians, the ratios of the medians and per round are printed (``--json`` for machines). It
reports and never asserts: exit 0 unless a command failed (1).

A second shape (``--shape small``, the table's other set-up): ten COPY layers of 300 random
files of 13,981 bytes (~40 MB in 3,000 files), each RUN after the first deleting every tenth
file of the layer below. Targets printed: time <= 0.8x docker-squash, size <= 1.0x.

Usage: ``python benchmarks/bench_squash.py [--shape large|small] [--rounds 5]
[--skip-analyze] [--json]``.
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
from pathlib import Path
from typing import Any

from benchlib import BenchError, find_tool, log, started_bed

BUSYBOX = Path("/bin/busybox")
DOCKER = "/usr/bin/docker"
BASE = "bench/squash-base:1"
IMAGE = "bench/squash:1"
OUT_IMGTAG = "bench/squash-out-imgtag:1"
OUT_PEER = "bench/squash-out-peer:1"
LAYERS = 20
MIB_PER_LAYER = 10
# The small-file shape: 10 layers of 300 files of 13,981 bytes (~40 MB in 3,000 files),
# every layer but the last deleting 30 files of the one below.
SMALL_LAYERS = 10
SMALL_FILES = 300
SMALL_BYTES = 13_981
TARGET_TIME = 0.8
TARGET_SIZE = 1.0


def dockerfile() -> str:
    lines = ["FROM " + BASE]
    for i in range(LAYERS):
        bb = "/bin/busybox"
        cmd = [
            f"{bb} mkdir -p /data /small/{i} /opq",
            f"{bb} head -c {MIB_PER_LAYER << 20} /dev/urandom > /data/big{i}",
            f"for n in $({bb} seq 50); do echo {i}-$n > /small/{i}/f$n; done",
            f"echo {i} > /opq/gen{i}",
        ]
        if i >= 1 and (i - 1) % 2 == 0:
            cmd.append(f"{bb} rm /data/big{i - 1}")
        if i >= 2:
            cmd.append(f"{bb} rm -rf /small/{i - 2}")
        if i % 5 == 4:
            cmd.append(f"{bb} rm -rf /opq && {bb} mkdir /opq && echo fresh > /opq/fresh{i}")
        lines.append("RUN " + json.dumps([bb, "sh", "-c", " && ".join(cmd)]))
    lines.append('CMD ["/bin/busybox", "ls", "-l", "/data"]')
    return "\n".join(lines) + "\n"


def small_dockerfile(ctx: Path) -> str:
    lines = ["FROM " + BASE]
    for i in range(SMALL_LAYERS):
        folder = ctx / f"s{i}"
        folder.mkdir()
        for n in range(SMALL_FILES):
            (folder / f"f{n}").write_bytes(os.urandom(SMALL_BYTES))
        lines.append(f"COPY s{i} /small/s{i}")
        if i:
            gone = [f"/small/s{i - 1}/f{n}" for n in range(0, SMALL_FILES, 10)]
            lines.append("RUN " + json.dumps(["/bin/busybox", "rm", *gone]))
    lines.append('CMD ["/bin/busybox", "ls", "/small"]')
    return "\n".join(lines) + "\n"


def run(argv: Sequence[str], env: dict[str, str], ok: Sequence[int] = (0,)) -> float:
    started = time.perf_counter()
    proc = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode not in ok:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-800:]
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: {tail}")
    return elapsed


def docker(env: dict[str, str], *args: str, ok: Sequence[int] = (0,)) -> str:
    proc = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode not in ok:
        raise BenchError(f"docker {' '.join(args)}: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip()


def size_of(env: dict[str, str], image: str) -> int:
    return int(docker(env, "image", "inspect", "-f", "{{.Size}}", image))


def build(env: dict[str, str], work: Path, shape: str) -> str:
    ctx = work / "ctx"
    ctx.mkdir()
    shutil.copy2(BUSYBOX, ctx / "busybox")
    (ctx / "Dockerfile.base").write_text("FROM scratch\nCOPY busybox /bin/busybox\n")
    (ctx / "Dockerfile").write_text(dockerfile() if shape == "large" else small_dockerfile(ctx))
    log(f"building the base and the {shape} image ...")
    docker(env, "build", "-q", "-t", BASE, "-f", str(ctx / "Dockerfile.base"), str(ctx))
    image_id = docker(env, "build", "-q", "-t", IMAGE, str(ctx))
    log(f"{IMAGE} = {image_id[:19]}, size {size_of(env, IMAGE)} bytes")
    return image_id


def clean_results(env: dict[str, str]) -> None:
    for name in (OUT_IMGTAG, OUT_PEER):
        docker(env, "rmi", "-f", name, ok=(0, 1))
    # docker-squash's intermediate "squashed" image names, and anything else left dangling.
    docker(env, "image", "prune", "-f", ok=(0, 1))


@contextlib.contextmanager
def engine_env() -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    if env.get("DOCKER_HOST"):
        log(f"using the running engine {env['DOCKER_HOST']}")
        yield env
        return
    with started_bed() as bed:
        env.update(bed.env())
        yield env


def bench(args: argparse.Namespace, env: dict[str, str], work: Path) -> dict[str, Any]:
    imgtag, peer, dive = find_tool("imgtag"), find_tool("docker-squash"), find_tool("dive")
    if imgtag is None or peer is None:
        raise BenchError("imgtag and docker-squash must be installed: pip install -e '.[bench]'")
    image_id = build(env, work, args.shape)
    sides = {
        "imgtag": [imgtag, "squash", IMAGE, "--from", BASE, "--tag", OUT_IMGTAG],
        "docker-squash": [peer, "-f", BASE, "-t", OUT_PEER, IMAGE, "--tmp-dir", str(work / "ds")],
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    sizes: dict[str, int] = {}
    for round_no in range(args.rounds + 1):
        order = list(sides) if round_no % 2 == 0 else list(reversed(sides))
        clean_results(env)
        for name in order:
            docker(env, "tag", image_id, IMAGE)
            shutil.rmtree(work / "ds", ignore_errors=True)
            os.sync()
            elapsed = run(sides[name], env)
            if round_no:  # round 0 warms caches up
                times[name].append(elapsed)
        sizes = {"imgtag": size_of(env, OUT_IMGTAG), "docker-squash": size_of(env, OUT_PEER)}
        if round_no:
            log(f"round {round_no}: imgtag {times['imgtag'][-1]:.3f} s, docker-squash "
                f"{times['docker-squash'][-1]:.3f} s")  # fmt: skip
    medians = {name: statistics.median(t) for name, t in times.items()}
    per_round = [
        round(a / b, 3) for a, b in zip(times["imgtag"], times["docker-squash"], strict=True)
    ]
    result: dict[str, Any] = {
        "image_size": size_of(env, IMAGE),
        "squash": {
            "median_s": {k: round(v, 3) for k, v in medians.items()},
            "time_ratio": round(medians["imgtag"] / medians["docker-squash"], 3),
            "time_ratio_per_round": per_round,
            # Other work on the machine moves both sides of a round alike: the median of the
            # per-round ratios is steadier than the ratio of the medians.
            "time_ratio_median_per_round": round(statistics.median(per_round), 3),
            "size": sizes,
            "size_ratio": round(sizes["imgtag"] / sizes["docker-squash"], 4),
        },
    }
    result["analyze"] = (
        {"skipped": "--skip-analyze"}
        if args.skip_analyze
        else bench_analyze(args, env, imgtag, dive)
    )
    return result


def bench_analyze(
    args: argparse.Namespace, env: dict[str, str], imgtag: str, dive: str | None
) -> dict[str, Any]:
    docker(env, "tag", docker(env, "image", "inspect", "-f", "{{.Id}}", IMAGE), IMAGE)
    mine = [imgtag, "analyze", IMAGE, "--base", "1", "--format", "json"]
    probe = subprocess.run(mine, env=env, capture_output=True, text=True, check=False)
    if probe.returncode not in (0, 1) or not probe.stdout.strip().startswith("{"):
        note = f"imgtag analyze does not work yet (exit {probe.returncode}): skipped"
        log(note)
        return {"skipped": note}
    if dive is None:
        return {"skipped": "dive is not installed"}
    rules_off = ["--lowestEfficiency", "disabled", "--highestWastedBytes", "disabled"]
    rules_off += ["--highestUserWastedPercent", "disabled"]
    theirs = [dive, IMAGE, "--ci", "--source", "docker", *rules_off]
    denv = dict(env, CI="true")
    times: dict[str, list[float]] = {"imgtag": [], "dive": []}
    for round_no in range(args.rounds + 1):
        pairs = [("imgtag", mine), ("dive", theirs)]
        for name, argv in pairs if round_no % 2 == 0 else reversed(pairs):
            elapsed = run(argv, denv, ok=(0, 1))
            if round_no:
                times[name].append(elapsed)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {
        "median_s": {k: round(v, 3) for k, v in medians.items()},
        "time_ratio": round(medians["imgtag"] / medians["dive"], 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--shape", choices=["large", "small"], default="large",
                        help="large: 20 layers writing and deleting 200 MiB; small: 40 MB in "
                        "3,000 small files")  # fmt: skip
    parser.add_argument("--skip-analyze", action="store_true", help="time squash only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        with engine_env() as env, tempfile.TemporaryDirectory(prefix="bench-squash-") as tmp:
            result = bench(args, env, Path(tmp))
            clean_results(env)
    except BenchError as exc:
        log(f"bench_squash.py: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    sq = result["squash"]
    print(f"image: {IMAGE} ({args.shape}), {result['image_size']} bytes over a 1-layer base, "
          f"{args.rounds} rounds")  # fmt: skip
    print(f"imgtag squash:  {sq['median_s']['imgtag']:.3f} s (median)")
    print(f"docker-squash:  {sq['median_s']['docker-squash']:.3f} s (median)")
    print(f"time ratio imgtag/docker-squash: {sq['time_ratio']:.3f} (target <= {TARGET_TIME}: "
          f"{'met' if sq['time_ratio'] <= TARGET_TIME else 'NOT met'}); "
          f"median per round {sq['time_ratio_median_per_round']:.3f}; "
          f"per round {sq['time_ratio_per_round']}")  # fmt: skip
    print(f"size: imgtag {sq['size']['imgtag']} bytes, docker-squash "
          f"{sq['size']['docker-squash']} bytes, ratio {sq['size_ratio']:.4f} "
          f"(target <= {TARGET_SIZE}: "
          f"{'met' if sq['size_ratio'] <= TARGET_SIZE else 'NOT met'})")  # fmt: skip
    an = result["analyze"]
    if "skipped" in an:
        print(f"analyze: {an['skipped']}")
    else:
        print(f"imgtag analyze: {an['median_s']['imgtag']:.3f} s, dive --ci: "
              f"{an['median_s']['dive']:.3f} s, ratio {an['time_ratio']:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
