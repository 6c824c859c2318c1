#!/usr/bin/env python3
"""Benchmark ``imgtag build-push --builder buildkit`` on Docker Engine 26 against buildx.

What it measures, on the test bed's second engine (Debian 13's dockerd 26 with the
containerd image store and buildx 0.13, see ``tests/testbed.py``), against its plain-HTTP
registry, in one run:

- **cold**: ``imgtag build-push --builder buildkit`` against ``docker buildx build --output
  type=image,name=REF,push=true`` of the same context, a ``FROM scratch`` image with
  Debian's static busybox and a 64 MB file of random bytes written anew before every
  command (every build makes and every push uploads a new 64 MB layer). Target <= 1.05.
- **warm**: each side's registry cache is seeded for the current payload (untimed: one
  buildx build with ``--cache-to type=registry,ref=REPO:buildcache,mode=max``), then
  ``docker buildx prune -af`` empties BuildKit's own cache before each timed command:
  ``imgtag build-push --cache-from REPO:buildcache`` against ``docker buildx build
  --cache-from type=registry,ref=REPO:buildcache --output ...,push=true``. Both must hit
  the cache (every step CACHED) or the round is an error. Target <= 1.05.

Each command is a fresh process timed with ``time.perf_counter()``; which side goes first
alternates each round. Before an imgtag round the new payload is committed (imgtag refuses a
dirty tree), outside the timed window. The script reports medians and ratios and never
asserts timings: exit 0 unless a command failed (1). Standard library only; root (it starts
the bed, which needs ``scripts/debian13-tools.sh`` to have fetched Debian 13's tools).

Usage: ``sudo .venv/bin/python benchmarks/bench_buildkit26.py [--rounds 5] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchlib import BenchError, find_tool, load_testbed, log

BUSYBOX = Path("/bin/busybox")
PAYLOAD = "payload.bin"
PAYLOAD_BYTES = 64 * 1024 * 1024
DOCKERFILE = (
    f"FROM scratch\nCOPY busybox /bin/busybox\nCOPY {PAYLOAD} /{PAYLOAD}\n"
    'CMD ["/bin/busybox", "ls"]\n'
)
TARGET = 1.05
#: The steps of DOCKERFILE that a cache hit must report CACHED (both COPY lines).
STEPS = 2


def run(argv: Sequence[str], cwd: Path, env: dict[str, str], what: str) -> tuple[float, str]:
    """Run one command; its wall time and its merged output. A failure is a BenchError."""
    started = time.perf_counter()
    proc = subprocess.run(
        list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
    )
    elapsed = time.perf_counter() - started
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        tail = "\n    ".join(out.strip().splitlines()[-10:])
        raise BenchError(f"{what} exited {proc.returncode}:\n    {tail}")
    return elapsed, out


def cached(out: str) -> int:
    return sum(1 for line in out.splitlines() if line.rstrip().endswith(" CACHED"))


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def new_payload(repo: Path) -> None:
    with open(repo / PAYLOAD, "wb") as fh:
        fh.write(os.urandom(PAYLOAD_BYTES))
    git(repo, "add", PAYLOAD)
    git(repo, "commit", "-q", "-m", "fix: a new payload")
    subprocess.run(["sync"], check=False)


def make_repo(root: Path) -> Path:
    repo = root / "ctx"
    repo.mkdir()
    shutil.copy2(BUSYBOX, repo / "busybox")
    (repo / "Dockerfile").write_text(DOCKERFILE)
    (repo / ".dockerignore").write_text(".git\n")
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "bench@example.invalid")
    git(repo, "config", "user.name", "bench")
    (repo / PAYLOAD).write_bytes(b"")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "feat: the image")
    git(repo, "tag", "v1.0.0")
    return repo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    imgtag = find_tool("imgtag")
    if imgtag is None:
        raise BenchError("imgtag is not installed here (pip install -e .)")
    testbed = load_testbed()
    log("starting the test bed and its engine 26 ...")
    bed = testbed.start()
    try:
        modern = testbed.start_engine26(bed)
        docker = str(modern.tools.docker)
        env = {k: v for k, v in modern.env(bed).items() if not k.startswith("IMGTAG_TESTBED_")}
        env = {k: v for k, v in {**os.environ, **env}.items() if not k.startswith("GIT_")}
        for name in ("IMGTAG_BUILDER", "IMGTAG_CACHE_FROM", "IMGTAG_CACHE_TO", "CI"):
            env.pop(name, None)
        reg = bed.plain.host
        run_id = secrets.token_hex(3)
        with tempfile.TemporaryDirectory(prefix="bench-bk26-") as temp:
            repo = make_repo(Path(temp))
            results: dict[str, dict[str, list[float]]] = {
                "cold": {"imgtag": [], "buildx": []},
                "warm": {"imgtag": [], "buildx": []},
            }
            build = 0

            def imgtag_cmd(repo_name: str, extra: Sequence[str] = ()) -> list[str]:
                return [imgtag, "build-push", f"{reg}/{repo_name}", "--builder", "buildkit",
                        "--build", str(build), "--no-lint", "--format", "json", *extra]  # fmt: skip

            def buildx_cmd(ref: str, extra: Sequence[str] = ()) -> list[str]:
                return [docker, "buildx", "build", "--progress", "plain", *extra, "--output",
                        f"type=image,name={ref},push=true,registry.insecure=true", "."]  # fmt: skip

            def prune() -> None:
                run([docker, "buildx", "prune", "-af"], repo, env, "docker buildx prune -af")

            for kind in ("cold", "warm"):
                for rnd in range(args.rounds + 1):  # round 0 warms up, untimed
                    order = ("imgtag", "buildx") if rnd % 2 == 0 else ("buildx", "imgtag")
                    for side in order:
                        build += 1
                        new_payload(repo)
                        name = f"bench/{run_id}/{kind}-{side}"
                        cache = f"{reg}/{name}:buildcache"
                        extra_i: list[str] = []
                        extra_b: list[str] = []
                        if kind == "warm":
                            # Seed this side's registry cache for this payload, then empty
                            # BuildKit's own: the timed build may only hit the registry.
                            seed = ["--cache-to", f"type=registry,ref={cache},mode=max,"
                                    "registry.insecure=true"]  # fmt: skip
                            run(buildx_cmd(f"{reg}/{name}:seed-{build}", seed), repo, env, "seed")
                            prune()
                            extra_i = ["--cache-from", cache]
                            insecure = f"type=registry,ref={cache},registry.insecure=true"
                            extra_b = ["--cache-from", insecure]
                        else:
                            prune()
                        if side == "imgtag":
                            took, out = run(imgtag_cmd(name, extra_i), repo, env, "imgtag")
                        else:
                            ref = f"{reg}/{name}:{build}"
                            took, out = run(buildx_cmd(ref, extra_b), repo, env, "buildx")
                        if kind == "warm" and cached(out) < STEPS:
                            raise BenchError(
                                f"the warm {side} build missed the cache:\n{out[-1500:]}"
                            )
                        if rnd:
                            results[kind][side].append(took)
                        log(f"{kind} round {rnd} {side}: {took:.2f} s")
    finally:
        bed.stop()
    report = {}
    for kind, sides in results.items():
        i, b = statistics.median(sides["imgtag"]), statistics.median(sides["buildx"])
        report[kind] = {"imgtag_s": round(i, 3), "buildx_s": round(b, 3),
                        "ratio": round(i / b, 3), "target": TARGET}  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for kind, row in report.items():
            verdict = "meets" if row["ratio"] <= TARGET else "MISSES"
            print(
                f"{kind}: imgtag build-push --builder buildkit {row['imgtag_s']:.2f} s, docker "
                f"buildx build --push {row['buildx_s']:.2f} s: {row['ratio']:.3f}x "
                f"(target <= {TARGET}x: {verdict})"
            )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
