#!/usr/bin/env python3
"""Benchmark ``imgtag next`` against setuptools-scm, dunamai and ``git describe``.

What it measures: the wall-clock time of one complete, fresh process that derives a version
from a large repository, i.e. what a CI job pays for each call. The set-up is the one of
benchmarks/README.md: 20,000 linear commits carrying 10,000 version tags, HEAD
three commits past the highest tag. The target is ``imgtag next`` <= 0.6x
``python -m setuptools_scm`` in the same run.

How:

1. A repository is generated once with ``git fast-import`` (cached under ``--workdir``;
   default a temporary directory removed afterwards). Versions increase along history and
   include numbers that sort wrongly as strings (1.10.0 > 1.9.0, 1.2.10 > 1.2.9, 10.0.0 >
   9.x), a few pre-releases (``-rc.N``, ``-beta.N``) and a few non-semver tags that every tool
   must ignore. Refs are packed as in a real clone. ``git describe --tags`` must name the
   highest tag at distance 3 before anything is timed.
2. Every command runs once untimed; its exit status must be 0 and its output is printed, so a
   reader sees that all of them computed comparable versions.
3. Warm-up rounds, then N timed rounds. A round runs every command once as a fresh subprocess
   (cwd = the repository), timed with ``time.perf_counter()`` around ``subprocess.run``. The
   commands are interleaved round-robin so machine noise hits all of them alike.
4. Medians and the ratios of ``imgtag`` to each peer are printed (``--json`` for machines).

The script reports and never asserts timings: it exits 0 unless a command failed (1) or the
generated repository is not what it should be (1). Standard library only.

Usage: ``pip install -e '.[bench]' && python benchmarks/bench_next.py``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from benchlib import BenchError, find_tool, log

# Bump when the generated repository changes, so that cached repositories are rebuilt.
GENERATOR_VERSION = 1
META_FILE = "imgtag-bench-next.json"  # lives in .git/, so the work tree stays clean

BASE_EPOCH = 1_600_000_000
COMMIT_INTERVAL_S = 600

# Tags that are not `prefix + semver`: every tool must ignore them. `v99.0` is a trap: a parser
# that accepts two-part versions would take it for the highest version. They sit deep in history
# so that `git describe --tags` (nearest tag wins) and dunamai (newest tag wins) never see them.
NON_SEMVER_TAGS = ("release-2020", "v1.2", "release-2021", "v99.0")

# A minimal pyproject.toml committed into the generated repository: without a
# [tool.setuptools_scm] table, `python -m setuptools_scm` warns (it still works, but the
# warning would be noise in the output we show). imgtag has no [tool.imgtag] table here,
# so it runs on its defaults.
PYPROJECT = "[tool.setuptools_scm]\n"

NAMES = ("imgtag", "setuptools_scm", "dunamai", "git-describe")
LABELS = {
    "imgtag": "imgtag next",
    "setuptools_scm": "setuptools_scm",
    "dunamai": "dunamai",
    "git-describe": "git describe",
}
TARGET_PEER = "setuptools_scm"
TARGET_MAX_RATIO = 0.6

# Environment variables that would change what a tool computes (pretend versions, config
# overrides) or which repository git works on, or would slow it (GIT_TRACE*). Dropped so
# every command does its real work on the generated repository.
DROPPED_ENV_PREFIXES = ("GIT_", "IMGTAG_", "SETUPTOOLS_SCM_", "VCS_VERSIONING_")


# --------------------------------------------------------------------------- repository


@dataclass(frozen=True)
class RepoSpec:
    commits: int
    tags: int
    annotated: bool
    distance: int = 3
    seed: int = 20_261_127

    @property
    def dirname(self) -> str:
        kind = "annotated" if self.annotated else "lightweight"
        return f"next-{self.commits}c-{self.tags}t-{kind}-d{self.distance}-g{GENERATOR_VERSION}"


@dataclass
class RepoInfo:
    path: Path
    spec: RepoSpec
    top_tag: str
    expected_imgtag: str
    version_tags: int
    other_tags: int
    build_seconds: float
    cached: bool = False


def release_versions(rng: random.Random) -> Iterator[tuple[int, int, int]]:
    """Yield an endless, increasing stream of releases shaped like a long-lived project.

    Up to 40 minors per major and 20 patches per minor, so 1.10.0 > 1.9.0 and 1.2.10 > 1.2.9
    occur often, and ~40 majors over 10,000 tags, so 10.0.0 > 9.x occurs too: ordering the
    tag names as strings gives the wrong answer here.
    """
    major = 0
    while True:
        first_minor = 1 if major == 0 else 0  # projects start at 0.1.0
        for minor in range(first_minor, first_minor + rng.randint(8, 40)):
            for patch in range(rng.randint(1, 20)):
                yield major, minor, patch
        major += 1


def version_tags(count: int, seed: int) -> list[str]:
    """Return `count` semver tag names (``vX.Y.Z`` and a few pre-releases), increasing."""
    # Pre-releases go into the first half of history only, so the top tag is always a release
    # and the prefix of the release stream taken below still contains their X.Y.0.
    head = list(islice(release_versions(random.Random(seed)), count // 2))
    pick = random.Random(seed + 1)
    majors = sorted({ma for ma, mi, pa in head if ma >= 1 and mi == 0 and pa == 0})
    minors = sorted({(ma, mi) for ma, mi, pa in head if ma >= 1 and mi >= 1 and pa == 0})
    pre: dict[tuple[int, int, int], list[str]] = {}
    if count >= 200:  # a tiny --tags (for trying the script out) gets releases only
        for ma in pick.sample(majors, k=min(4, len(majors))):
            pre[(ma, 0, 0)] = ["rc.1", "rc.2"]
        for ma, mi in pick.sample(minors, k=min(2, len(minors))):
            pre[(ma, mi, 0)] = ["beta.1"]
    n_pre = sum(len(v) for v in pre.values())

    names: list[str] = []
    for ma, mi, pa in islice(release_versions(random.Random(seed)), count - n_pre):
        names.extend(f"v{ma}.{mi}.{pa}-{p}" for p in pre.get((ma, mi, pa), []))
        names.append(f"v{ma}.{mi}.{pa}")
    return names


def fast_import_stream(spec: RepoSpec, tags: Sequence[str]) -> str:
    """Return the fast-import stream: the commits, each followed by its tags."""
    last_tagged = spec.commits - spec.distance
    # Spread the version tags evenly over commits 1..last_tagged, the highest exactly on
    # last_tagged, so HEAD is `distance` commits past it.
    at: dict[int, list[str]] = {}
    if len(tags) == 1:
        at[last_tagged] = [tags[0]]
    else:
        step = (last_tagged - 1) / (len(tags) - 1)
        for k, name in enumerate(tags):
            at.setdefault(1 + round(k * step), []).append(name)
    # Non-semver tags on untagged commits in the first half of history (a commit of its own
    # each, so `git describe` never has to choose between two tags on one commit).
    free = [i for i in range(2, last_tagged // 2) if i not in at]
    if len(free) < len(NON_SEMVER_TAGS):
        raise BenchError("too many tags for the number of commits; lower --tags")
    stride = len(free) // len(NON_SEMVER_TAGS)
    for k, name in enumerate(NON_SEMVER_TAGS):
        at[free[k * stride]] = [name]

    out: list[str] = []
    for i in range(1, spec.commits + 1):
        when = BASE_EPOCH + i * COMMIT_INTERVAL_S
        msg = f"commit {i}\n"
        data = f"{i}\n"
        out.append(f"commit refs/heads/main\nmark :{i}\ncommitter T <t@e> {when} +0000\n")
        out.append(f"data {len(msg)}\n{msg}")
        if i > 1:
            out.append(f"from :{i - 1}\n")
        out.append(f"M 644 inline f.txt\ndata {len(data)}\n{data}\n")
        if i == 1:
            out.append(f"M 644 inline pyproject.toml\ndata {len(PYPROJECT)}\n{PYPROJECT}\n")
        out.append("\n")
        for name in at.get(i, []):
            if spec.annotated:
                tmsg = f"Release {name}\n"
                out.append(
                    f"tag {name}\nfrom :{i}\ntagger T <t@e> {when + 60} +0000\n"
                    f"data {len(tmsg)}\n{tmsg}\n"
                )
            else:
                out.append(f"reset refs/tags/{name}\nfrom :{i}\n\n")
    return "".join(out)


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=clean_env(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BenchError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout


def build_repo(path: Path, spec: RepoSpec) -> RepoInfo:
    tags = version_tags(spec.tags, spec.seed)
    stream = fast_import_stream(spec, tags)
    top = tags[-1]
    ma, mi, pa = (int(x) for x in top[1:].split("."))
    started = time.perf_counter()
    path.mkdir(parents=True)
    git(path, "-c", "init.defaultBranch=main", "init", "-q")
    # fast-import grows and trims its heap ~200,000 times for this stream (brk calls, seconds
    # of system time here); a 64 MB malloc top pad avoids that. Ignored outside glibc.
    env = {**clean_env(), "GLIBC_TUNABLES": "glibc.malloc.top_pad=67108864"}
    proc = subprocess.run(
        ["git", "fast-import", "--quiet"],
        cwd=path,
        env=env,
        input=stream,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"git fast-import failed: {proc.stderr.strip()}")
    # fast-import writes objects and refs only: fill the index and the work tree, so the
    # checkout is clean (a dirty tree would change what setuptools-scm and dunamai print).
    git(path, "reset", "--hard", "-q")
    # A fresh clone has its tags in packed-refs, not as 10,000 loose files.
    git(path, "pack-refs", "--all")
    info = RepoInfo(
        path=path,
        spec=spec,
        top_tag=top,
        # `next --counter commits` past a release: patch bump (the default), N = distance.
        expected_imgtag=f"{ma}.{mi}.{pa + 1}-{spec.distance}",
        version_tags=len(tags),
        other_tags=len(NON_SEMVER_TAGS),
        build_seconds=time.perf_counter() - started,
    )
    return info


def check_repo(info: RepoInfo) -> None:
    """Refuse to time anything unless the repository is exactly the promised set-up."""
    repo, spec = info.path, info.spec
    described = git(repo, "describe", "--tags").strip()
    pattern = rf"{re.escape(info.top_tag)}-{spec.distance}-g[0-9a-f]{{7,}}"
    if not re.fullmatch(pattern, described):
        raise BenchError(
            f"git describe --tags says {described!r}, expected {info.top_tag} at distance "
            f"{spec.distance}; delete {repo} to rebuild it"
        )
    n_tags = len(git(repo, "tag", "--list").split())
    if n_tags != info.version_tags + info.other_tags:
        raise BenchError(f"{repo} has {n_tags} tags, expected the generated ones; delete it")
    if git(repo, "status", "--porcelain").strip():
        raise BenchError(f"the work tree of {repo} is dirty; delete it to rebuild it")
    if any((repo / ".git" / "refs" / "tags").iterdir()):
        raise BenchError(f"{repo} has loose tag refs; run `git pack-refs --all` or delete it")


def prepare_repo(workdir: Path, spec: RepoSpec) -> RepoInfo:
    """Return the cached repository for `spec` under `workdir`, building it if needed."""
    path = workdir / spec.dirname
    meta = path / ".git" / META_FILE
    if meta.is_file():
        data = json.loads(meta.read_text())
        if data.get("spec") == asdict(spec):
            info = RepoInfo(
                path=path,
                spec=spec,
                top_tag=data["top_tag"],
                expected_imgtag=data["expected_imgtag"],
                version_tags=data["version_tags"],
                other_tags=data["other_tags"],
                build_seconds=data["build_seconds"],
                cached=True,
            )
            check_repo(info)
            return info
    # Build next to the final place and rename at the end, so an interrupted build never
    # leaves a half-made repository that a later run would take for a cached one.
    partial = workdir / (spec.dirname + ".partial")
    for stale in (path, partial):
        if stale.exists():
            shutil.rmtree(stale)
    log(f"building {spec.commits} commits / {spec.tags} tags with git fast-import ...")
    info = build_repo(partial, spec)
    info.path = partial
    check_repo(info)
    meta_data = {
        "spec": asdict(spec),
        "top_tag": info.top_tag,
        "expected_imgtag": info.expected_imgtag,
        "version_tags": info.version_tags,
        "other_tags": info.other_tags,
        "build_seconds": info.build_seconds,
    }
    (partial / ".git" / META_FILE).write_text(json.dumps(meta_data, indent=2) + "\n")
    partial.rename(path)
    info.path = path
    log(f"built {path} in {info.build_seconds:.2f} s")
    return info


# --------------------------------------------------------------------------- commands


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV_PREFIXES)}


@dataclass
class Command:
    name: str
    argv: list[str]
    hint: str  # what to do when it fails
    output: str = ""
    samples: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABELS[self.name]


def make_commands(names: Sequence[str], args: argparse.Namespace) -> list[Command]:
    install = "install the benchmark extras: pip install -e '.[bench]'"
    only_peers = "--only " + ",".join(n for n in NAMES if n != "imgtag")
    commands: list[Command] = []
    for name in names:
        if name == "imgtag":
            base = shlex.split(args.imgtag) if args.imgtag else [find_tool("imgtag") or ""]
            if not base[0]:
                raise BenchError(
                    "imgtag not found next to this Python or on PATH: pip install -e '.[bench]' "
                    f"(or pass --imgtag CMD), or time the peers alone with {only_peers}"
                )
            hint = f"fix imgtag, or time the peers alone with {only_peers}"
            commands.append(Command(name, [*base, "next", "--counter", "commits"], hint))
        elif name == "setuptools_scm":
            commands.append(Command(name, [args.python, "-m", "setuptools_scm"], install))
        elif name == "dunamai":
            exe = find_tool("dunamai")
            if exe is None:
                raise BenchError(f"dunamai not found next to this Python or on PATH: {install}")
            commands.append(Command(name, [exe, "from", "git"], install))
        else:
            commands.append(Command(name, ["git", "describe", "--tags"], "is git installed?"))
    return commands


def run_once(cmd: Command, repo: Path, env: dict[str, str]) -> float:
    """Run one command as a fresh process; return its wall time in seconds."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd.argv, cwd=repo, env=env, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise BenchError(f"{cmd.label} could not start ({exc}): {cmd.hint}") from exc
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
        shown = "\n    ".join(detail[-5:])
        raise BenchError(
            f"{cmd.label} exited with {proc.returncode} ({shlex.join(cmd.argv)}):\n"
            f"    {shown}\n  {cmd.hint}"
        )
    cmd.output = proc.stdout.strip()
    return elapsed


def output_warnings(commands: Sequence[Command], info: RepoInfo) -> list[str]:
    """Flag a command whose version does not match the set-up: its time would mislead."""
    top = info.top_tag.lstrip("v")
    ma, mi, pa = top.split(".")
    nxt = f"{ma}.{mi}.{int(pa) + 1}"
    warnings = []
    for cmd in commands:
        if cmd.name == "imgtag":
            if cmd.output != info.expected_imgtag:
                warnings.append(
                    f"imgtag next printed {cmd.output!r}, expected {info.expected_imgtag!r}"
                    f" (base tag {info.top_tag}, distance {info.spec.distance}):"
                    " its time does not measure the same work"
                )
        elif top not in cmd.output and nxt not in cmd.output:
            warnings.append(
                f"{cmd.label} printed {cmd.output!r}, which names neither {top} nor {nxt}"
            )
    return warnings


# --------------------------------------------------------------------------- report


def ratio_key(peer: str) -> str:
    return f"imgtag/{peer}"


def summarise(commands: Sequence[Command]) -> tuple[dict[str, Any], dict[str, float]]:
    results: dict[str, Any] = {}
    for cmd in commands:
        ms = [s * 1000 for s in cmd.samples]
        results[cmd.name] = {
            "argv": cmd.argv,
            "output": cmd.output,
            "median_ms": round(statistics.median(ms), 2),
            "min_ms": round(min(ms), 2),
            "max_ms": round(max(ms), 2),
            "samples_ms": [round(x, 2) for x in ms],
        }
    ratios: dict[str, float] = {}
    if "imgtag" in results:
        own = results["imgtag"]["median_ms"]
        for name, res in results.items():
            if name != "imgtag":
                ratios[ratio_key(name)] = round(own / res["median_ms"], 3)
    return results, ratios


def print_report(
    info: RepoInfo,
    commands: Sequence[Command],
    results: dict[str, Any],
    ratios: dict[str, float],
    rounds: int,
    warnings: Sequence[str],
) -> None:
    spec = info.spec
    kind = "annotated" if spec.annotated else "lightweight"
    print(
        f"repository: {info.path}\n"
        f"  {spec.commits} commits, {info.version_tags} {kind} version tags "
        f"(+{info.other_tags} non-semver), top {info.top_tag}, HEAD {spec.distance} past it; "
        + ("cached" if info.cached else f"built in {info.build_seconds:.2f} s")
    )
    print(f"\n{rounds} rounds, interleaved; each command a fresh process\n")
    width = max(len(c.label) for c in commands)
    print(f"{'command':<{width}}  {'median ms':>9}  {'min ms':>8}  {'max ms':>8}  output")
    for cmd in commands:
        res = results[cmd.name]
        print(
            f"{cmd.label:<{width}}  {res['median_ms']:>9.1f}  {res['min_ms']:>8.1f}  "
            f"{res['max_ms']:>8.1f}  {res['output']}"
        )
    if ratios:
        print()
        for cmd in commands:
            if cmd.name == "imgtag":
                continue
            line = f"imgtag / {cmd.label:<{width}}  {ratios[ratio_key(cmd.name)]:>6.2f}x"
            if cmd.name == TARGET_PEER:
                met = ratios[ratio_key(cmd.name)] <= TARGET_MAX_RATIO
                line += f"   target <= {TARGET_MAX_RATIO:.2f}x: {'met' if met else 'MISSED'}"
            print(line)
    for warning in warnings:
        print(f"\nWARNING: {warning}")


# --------------------------------------------------------------------------- main


def parse_only(values: Sequence[str] | None) -> tuple[list[str], set[str]]:
    """Return the selected names in the fixed report order, and any unknown ones."""
    if not values:
        return list(NAMES), set()
    wanted = {part.strip() for value in values for part in value.split(",") if part.strip()}
    # The fixed order keeps reports of different runs comparable line by line.
    return [n for n in NAMES if n in wanted], wanted - set(NAMES)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time `imgtag next` against setuptools-scm, dunamai and git describe "
        "on a generated repository (benchmarks/README.md).",
    )
    p.add_argument("--rounds", type=int, default=15, help="timed rounds (default 15)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    p.add_argument(
        "--workdir",
        type=Path,
        help="where the generated repository is cached (default: a temporary directory, "
        "removed afterwards)",
    )
    p.add_argument("--commits", type=int, default=20_000, help="commits (default 20000)")
    p.add_argument("--tags", type=int, default=10_000, help="version tags (default 10000)")
    p.add_argument("--annotated", action="store_true", help="annotated instead of lightweight")
    p.add_argument(
        "--imgtag",
        metavar="CMD",
        help="how to run imgtag, e.g. 'python -m tagger' (default: the imgtag script next "
        "to this Python, else on PATH)",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter for `python -m setuptools_scm` (default: this one)",
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="NAMES",
        help=f"comma-separated subset of {','.join(NAMES)} (repeatable; default all)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        p.error("--rounds must be >= 1 and --warmup >= 0")
    if args.tags < 1 or args.tags + len(NON_SEMVER_TAGS) > args.commits - 3:
        p.error("need 1 <= --tags <= --commits - 7 (distance 3 plus the non-semver tags)")
    args.names, unknown = parse_only(args.only)
    if unknown or not args.names:
        p.error(f"--only takes names from {','.join(NAMES)}; got {','.join(sorted(unknown))}")
    return args


def bench(args: argparse.Namespace, workdir: Path) -> int:
    # Find the tools first: a missing one should not cost a repository build.
    commands = make_commands(args.names, args)
    spec = RepoSpec(commits=args.commits, tags=args.tags, annotated=args.annotated)
    info = prepare_repo(workdir, spec)
    env = clean_env()

    # One untimed run each: a failing command stops here, before any timing, and its
    # output is what the report shows.
    for cmd in commands:
        run_once(cmd, info.path, env)
        log(f"{cmd.label:<15} {shlex.join(cmd.argv)}\n{'':<15} -> {cmd.output}")
    warnings = output_warnings(commands, info)
    for warning in warnings:
        log(f"WARNING: {warning}")
    if any(w.startswith("imgtag next printed") for w in warnings):
        # A fast wrong answer makes every ratio meaningless: stop before timing.
        log("imgtag printed the wrong tag; not timing it")
        return 1

    total = args.warmup + args.rounds
    for r in range(total):
        # Rotate the starting command each round: whatever runs right after another command
        # (warm caches, CPU frequency) is spread over all of them instead of favouring one.
        shift = r % len(commands)
        for cmd in [*commands[shift:], *commands[:shift]]:
            elapsed = run_once(cmd, info.path, env)
            if r >= args.warmup:
                cmd.samples.append(elapsed)
        log(f"round {r + 1}/{total}{' (warm-up)' if r < args.warmup else ''}")

    results, ratios = summarise(commands)
    if args.json:
        met = ratios.get(ratio_key(TARGET_PEER))
        doc = {
            "benchmark": "next",
            "repo": {
                "path": str(info.path),
                "commits": spec.commits,
                "version_tags": info.version_tags,
                "other_tags": info.other_tags,
                "annotated": spec.annotated,
                "distance": spec.distance,
                "top_tag": info.top_tag,
                "expected_imgtag": info.expected_imgtag,
                "build_seconds": round(info.build_seconds, 3),
                "cached": info.cached,
            },
            "rounds": args.rounds,
            "warmup": args.warmup,
            "results": results,
            "ratios": ratios,
            "target": {
                "ratio": ratio_key(TARGET_PEER),
                "max": TARGET_MAX_RATIO,
                "met": None if met is None else met <= TARGET_MAX_RATIO,
            },
            "warnings": warnings,
        }
        print(json.dumps(doc, indent=2))
    else:
        print_report(info, commands, results, ratios, args.rounds, warnings)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            return bench(args, args.workdir)
        with tempfile.TemporaryDirectory(prefix="imgtag-bench-next-") as tmp:
            return bench(args, Path(tmp))
    except BenchError as exc:
        log(f"bench_next.py: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
