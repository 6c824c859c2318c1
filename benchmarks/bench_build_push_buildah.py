#!/usr/bin/env python3
"""Benchmark ``imgtag build-push --builder buildah`` against ``buildah bud`` + ``buildah push``.

What it measures: the wall-clock time of one complete ``imgtag build-push --builder buildah``
process (start-up, derive, the registry checks and the claim, ``buildah bud``, the claim
check, ``buildah push``, the verification, removing its build name) against
``buildah bud -t REF . && buildah push REF`` of the same context, in the same run, with
``STORAGE_DRIVER=vfs`` and ``BUILDAH_ISOLATION=chroot`` as inside CI containers. The context
is the one of ``bench_build_push.py`` (its ``Context``: a ``FROM scratch`` image with
busybox and a 64 MB random payload written anew before every command, committed outside the
timed window). The contract's target is ``imgtag / (buildah bud + buildah push)`` <= 1.10.

No Docker engine is involved: only a registry (``--registry HOST:PORT``, or
``IMGTAG_TESTBED_PLAIN`` from ``eval "$(python tests/testbed.py up)"``; otherwise the test
bed is started and stopped here; root only). The peer side also removes its image after each
round (outside the timed window), so neither side finds the other's layers in the store.

Reports and never asserts timings: exits 0 unless a command failed (1). Standard library only.

Usage: ``sudo python benchmarks/bench_build_push_buildah.py [--rounds N] [--json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench_build_push import Context, check, clean_env, run, settle
from benchlib import BenchError, find_tool, log, started_bed

TARGET_MAX_RATIO = 1.10
BUILDAH_ENV = {"STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


@contextlib.contextmanager
def registry(args: argparse.Namespace) -> Iterator[str]:
    given = args.registry or os.environ.get("IMGTAG_TESTBED_PLAIN")
    if given:
        yield given
        return
    with started_bed() as bed:
        yield bed.plain.host


def bench(args: argparse.Namespace, reg: str, workdir: Path) -> int:
    buildah = shutil.which("buildah")
    if buildah is None:
        raise BenchError("buildah is not installed: apt-get install buildah")
    imgtag = find_tool("imgtag")
    if imgtag is None:
        raise BenchError("imgtag not found next to this Python or on PATH: pip install -e .")
    # No DOCKER_HOST: imgtag must not need an engine here, and the auth file is imgtag's.
    env = clean_env(BUILDAH_ENV)
    env.pop("DOCKER_HOST", None)
    run_id = time.strftime("r%Y%m%d-%H%M%S")
    ours, peer = f"{reg}/bench/{run_id}/imgtag", f"{reg}/bench/{run_id}/buildah"
    ctx = Context(workdir / "context", args.payload_mb)
    ctx.create()
    samples: dict[str, list[float]] = {"imgtag": [], "buildah": [], "bud": [], "push": []}
    total = args.warmup + args.rounds
    for r in range(total):
        timed = r >= args.warmup

        def side_imgtag(r: int = r, timed: bool = timed) -> None:
            ctx.fresh_payload()
            ctx.commit_payload(f"round {r}")
            settle()
            argv = [imgtag, "build-push", ours, "--builder", "buildah", "--build", str(r)]
            result = check(run([*argv, "--no-lint"], ctx.path, env), "imgtag build-push")
            if timed:
                samples["imgtag"].append(result.elapsed)

        def side_buildah(r: int = r, timed: bool = timed) -> None:
            ctx.fresh_payload()
            settle()
            ref = f"{peer}:{r}"
            bud = check(run([buildah, "bud", "-t", ref, "."], ctx.path, env), "buildah bud")
            push = check(
                run([buildah, "push", "--tls-verify=false", ref], ctx.path, env), "buildah push"
            )
            check(run([buildah, "rmi", ref], ctx.path, env), "buildah rmi")
            if timed:
                samples["bud"].append(bud.elapsed)
                samples["push"].append(push.elapsed)
                samples["buildah"].append(bud.elapsed + push.elapsed)

        order = (side_imgtag, side_buildah) if r % 2 == 0 else (side_buildah, side_imgtag)
        for side in order:
            side()
        if timed:
            log(
                f"round {r + 1}/{total}: imgtag {samples['imgtag'][-1]:.2f} s, buildah bud + "
                f"push {samples['buildah'][-1]:.2f} s"
            )
        else:
            log(f"round {r + 1}/{total} (warm-up)")

    def median(name: str) -> float:
        return round(statistics.median(samples[name]), 3)

    ratio = round(median("imgtag") / median("buildah"), 3)
    doc: dict[str, Any] = {
        "benchmark": "build-push --builder buildah",
        "setup": {"registry": reg, "payload_mb": args.payload_mb, **BUILDAH_ENV},
        "rounds": args.rounds,
        "results": {
            name: {"median_s": median(name), "samples_s": samples[name]} for name in samples
        },
        "ratio": ratio,
        "target": {
            "ratio": "imgtag/(buildah bud + push)",
            "max": TARGET_MAX_RATIO,
            "met": ratio <= TARGET_MAX_RATIO,
        },
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"imgtag build-push --builder buildah  median {median('imgtag'):.3f} s")
        print(
            f"buildah bud + buildah push         median {median('buildah'):.3f} s "
            f"(bud {median('bud'):.3f} s, push {median('push'):.3f} s)"
        )
        verdict = "met" if ratio <= TARGET_MAX_RATIO else "NOT met"
        print(f"ratio {ratio:.3f} (target <= {TARGET_MAX_RATIO}: {verdict})")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--registry", help="HOST:PORT of a plain-HTTP registry (default: the bed's)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--payload-mb", type=int, default=64)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.payload_mb < 1 or args.warmup < 0:
        p.error("--rounds and --payload-mb must be >= 1, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with registry(args) as reg, tempfile.TemporaryDirectory(prefix="imgtag-bench-") as tmp:
            return bench(args, reg, Path(tmp))
    except BenchError as exc:
        log(f"bench_build_push_buildah.py: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
