#!/usr/bin/env python3
"""Benchmark ``imgtag build-push`` against ``docker build`` + ``docker push``.

What it measures: the wall-clock time of one complete ``imgtag build-push`` process (start-up,
deriving the tag, the registry checks and the claim, the build through the engine API, the push
and the verification) against the time of ``docker build -t REF . && docker push REF`` of the
same context on the same engine and registry, in the same run. The set-up is the one of
benchmarks/README.md: a ``FROM scratch`` image with Debian's static busybox and a
64 MB file of random bytes that is written anew before every command, so every build makes and
every push uploads a new 64 MB layer (only the 2 MB busybox layer is cached). The contract's
target is ``imgtag / (docker build + docker push)`` <= 1.10.

How:

1. The engine and registry: ``DOCKER_HOST`` plus ``--registry HOST:PORT`` (or
   ``IMGTAG_TESTBED_PLAIN``, which ``eval "$(python tests/testbed.py up)"`` exports) use a
   running bed; otherwise the script starts the test bed of ``tests/testbed.py`` (a private
   dockerd and Distribution registries on 127.0.0.1; root only) and stops it at the end. The
   plain (HTTP, anonymous) registry is used. The docker CLI is the first of ``--docker``,
   ``/usr/bin/docker``, ``/usr/local/bin/docker``, ``docker`` on PATH that can talk to the
   engine (``docker version``).
2. The context is a git checkout (imgtag derives the tag from it): ``Dockerfile``,
   ``.dockerignore`` (``.git``), ``busybox`` and ``payload.bin``, tagged ``v1.0.0``. Both
   sides build this same directory. Before an imgtag run the new payload is committed, so the
   tree is clean as in CI (no ``--allow-dirty``: that would time a path CI never takes); the
   commit and ``sync`` happen outside the timed window.
3. One warm-up round, then N timed rounds (``--rounds``, default 7). A round runs ``imgtag
   build-push REG/bench/RUN/imgtag --build R --no-lint --builder docker`` and ``docker build
   -t REG/bench/RUN/docker:R . && docker push REG/bench/RUN/docker:R``, each a fresh process,
   timed with ``time.perf_counter()`` around the subprocess calls; which side goes first
   alternates each round so drift and caches hit both alike. ``RUN`` is new per invocation, so
   a long-lived bed never already holds a tag.
4. Medians, the ratio and a breakdown of imgtag's time: phases from the arrival times of its
   stderr progress lines (start-up to "building", build, the engine's LABEL steps for the OCI
   labels, push, verify and exit), and its fixed overhead measured apart: ``python -c pass``,
   ``python -c "import tagger.cli"``, ``python -c "import docker"`` and ``imgtag build-push
   --dry-run`` (start-up, derive, existence check). ``--docker-labels`` gives the docker side
   the same labels, to separate the cost of the labels from imgtag's own.

The script reports and never asserts timings: it exits 0 unless a command failed or the bed did
not start (1). Standard library only.

Usage: ``sudo python benchmarks/bench_build_push.py`` (``--json`` for machines).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import BenchError, find_tool, log, started_bed

BUSYBOX = Path("/bin/busybox")
DOCKER_CANDIDATES = ("/usr/bin/docker", "/usr/local/bin/docker", "docker")

PAYLOAD_NAME = "payload.bin"
DOCKERFILE = (
    "FROM scratch\n"
    "COPY busybox /bin/busybox\n"
    f"COPY {PAYLOAD_NAME} /{PAYLOAD_NAME}\n"
    'CMD ["/bin/busybox", "ls", "-l", "/"]\n'
)
# Both clients would otherwise tar .git (64 MB more per committed round) into the context.
DOCKERIGNORE = ".git\n"
BASE_TAG = "v1.0.0"
# HEAD is always past v1.0.0 (each imgtag round commits), so `next` bumps the patch.
EXPECTED_VERSION = "1.0.1"

TARGET_MAX_RATIO = 1.10

# Variables that would change what imgtag computes or writes (config overrides, CI outputs) or
# which repository git works on. IMGTAG_TESTBED_* from `testbed.py up` go too: imgtag needs none.
DROPPED_ENV_PREFIXES = ("GIT_", "IMGTAG_")
DROPPED_ENV = ("GITHUB_OUTPUT", "DOCKER_BUILDKIT", "BUILDKIT_PROGRESS")

# imgtag's progress lines (stderr) that end one phase and start the next. The engine's classic
# builder turns every build label into a LABEL step of its own (a container created, committed
# and removed), appended after the Dockerfile's steps: those steps are a phase of their own.
MARK_BUILD = re.compile(r"^building ")
MARK_LABELS = re.compile(r"^Step \d+/\d+ : LABEL org\.opencontainers\.image\.")
MARK_BUILT = re.compile(r"^Successfully tagged ")
MARK_PUSH = re.compile(r"^The push refers to repository")
MARK_PUSHED = re.compile(r"digest: sha256:[0-9a-f]{64}")
PHASES = (
    ("startup_checks", "start-up, derive, HEAD, claim"),
    ("build", "build: SDK, context tar, Dockerfile steps"),
    ("label_steps", "build: one LABEL step per OCI label"),
    ("pre_push", "claim confirm, HEAD again"),
    ("push", "push"),
    ("verify_exit", "verify, release claim, exit"),
)
# What imgtag puts on every image (README.md, build-push step 4); with --docker-labels the
# docker side gets the same keys, so the ratio leaves the classic builder's label steps out.
OCI_LABEL_KEYS = ("created", "revision", "title", "version")


def median_ms(samples: Sequence[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


# --------------------------------------------------------------------------- processes


@dataclass
class Run:
    argv: list[str]
    returncode: int
    elapsed: float
    stdout: str
    # (seconds since start, line) for each stderr line, in arrival order.
    stderr: list[tuple[float, str]]

    def stderr_tail(self, n: int = 8) -> str:
        return "\n    ".join(line for _, line in self.stderr[-n:]) or "(no stderr)"


def run(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> Run:
    """Run one process; time it with perf_counter and stamp each stderr line on arrival.

    Reading stderr line by line costs the child nothing (it writes to a pipe either way) and
    gives the phase breakdown without touching imgtag.
    """
    out_chunks: list[bytes] = []
    lines: list[tuple[float, str]] = []
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as exc:
        raise BenchError(f"{argv[0]} could not start: {exc}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    stdout = proc.stdout
    # stdout in a thread, so a full stdout pipe can never block the child while we read stderr.
    reader = threading.Thread(target=lambda: out_chunks.append(stdout.read()))
    reader.start()
    for raw in proc.stderr:
        lines.append((time.perf_counter() - started, raw.decode(errors="replace").rstrip("\r\n")))
    returncode = proc.wait()
    elapsed = time.perf_counter() - started
    reader.join()
    stdout_text = b"".join(out_chunks).decode(errors="replace")
    return Run(list(argv), returncode, elapsed, stdout_text, lines)


def check(result: Run, what: str) -> Run:
    if result.returncode != 0:
        raise BenchError(
            f"{what} exited with {result.returncode} ({shlex.join(result.argv)}):\n"
            f"    {result.stderr_tail()}\n    {result.stdout.strip()[-500:]}"
        )
    return result


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=clean_env(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        detail = proc.stderr.strip() or proc.stdout.strip()
        raise BenchError(f"git {' '.join(args)} failed in {repo}: {detail}")
    return proc.stdout


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(DROPPED_ENV_PREFIXES) and k not in DROPPED_ENV
    }
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------- the bed


@dataclass
class Bed:
    docker_host: str
    registry: str
    docker_config: str | None
    started_here: bool

    def env(self) -> dict[str, str]:
        env = {"DOCKER_HOST": self.docker_host}
        if self.docker_config:
            env["DOCKER_CONFIG"] = self.docker_config
        return env


@contextlib.contextmanager
def open_bed(args: argparse.Namespace) -> Iterator[Bed]:
    registry = args.registry or os.environ.get("IMGTAG_TESTBED_PLAIN")
    docker_host = os.environ.get("DOCKER_HOST")
    if registry and docker_host:
        log(f"using the running engine {docker_host} and registry {registry}")
        yield Bed(docker_host, registry, os.environ.get("DOCKER_CONFIG"), started_here=False)
        return
    if args.registry and not docker_host:
        raise BenchError("--registry needs DOCKER_HOST for the engine that pushes to it")
    with started_bed() as bed:
        yield Bed(bed.engine.host, bed.plain.host, str(bed.docker_config), started_here=True)


def pick_docker(candidates: Sequence[str], env: dict[str, str]) -> tuple[str, str, str]:
    """The first docker CLI that talks to the engine: (path, client version, engine version).

    Debian's /usr/bin/docker (20.10, the engine's own version) comes first; /usr/local/bin/docker
    is a v28 client whose API negotiation with a 20.10 engine is not guaranteed, so each
    candidate is asked for both versions before it is used.
    """
    tried = []
    for candidate in candidates:
        path = candidate if "/" in candidate else shutil.which(candidate)
        if not path or not os.access(path, os.X_OK):
            tried.append(f"{candidate}: not found")
            continue
        proc = subprocess.run(
            [path, "version", "--format", "{{.Client.Version}} {{.Server.Version}}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        parts = proc.stdout.split()
        if proc.returncode == 0 and len(parts) == 2:
            return path, parts[0], parts[1]
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        tried.append(f"{path}: {detail[-1] if detail else f'exit {proc.returncode}'}")
    raise BenchError("no docker CLI can talk to the engine:\n    " + "\n    ".join(tried))


# --------------------------------------------------------------------------- the context


class Context:
    """The git checkout both sides build; a fresh payload before every command."""

    def __init__(self, path: Path, payload_mb: int) -> None:
        self.path = path
        self.payload_bytes = payload_mb * 1024 * 1024
        self.commit_seconds: list[float] = []
        # Modification times for the payloads: whole seconds, a different one for every write,
        # all a day in the past (see fresh_payload).
        self._mtime = int(time.time()) - 86_400

    def create(self) -> None:
        self.path.mkdir(parents=True)
        git(self.path, "-c", "init.defaultBranch=main", "init", "-q")
        for key, value in (
            ("user.name", "bench"),
            ("user.email", "bench@example.invalid"),
            ("commit.gpgsign", "false"),
            # Random bytes do not compress: zlib would only burn ~2 s per commit.
            ("core.compression", "0"),
            ("core.looseCompression", "0"),
            # No `gc --auto` in the background, stealing CPU from a timed command.
            ("gc.auto", "0"),
        ):
            git(self.path, "config", key, value)
        shutil.copy2(BUSYBOX, self.path / "busybox")
        (self.path / "Dockerfile").write_text(DOCKERFILE)
        (self.path / ".dockerignore").write_text(DOCKERIGNORE)
        self.fresh_payload()
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", "initial")
        git(self.path, "tag", BASE_TAG)

    def fresh_payload(self) -> None:
        target = self.path / PAYLOAD_NAME
        with open(target, "wb") as fh:
            # In 8 MB pieces: one 64 MB os.urandom() would need the whole buffer twice.
            for _ in range(self.payload_bytes // (8 << 20)):
                fh.write(os.urandom(8 << 20))
            fh.write(os.urandom(self.payload_bytes % (8 << 20)))
        # A unique mtime in the past. Past: a file as new as git's index is "racily clean", and
        # git status would re-hash all 64 MB inside imgtag's timed run. Unique: git add trusts
        # an unchanged mtime and size, and would miss new bytes written in the same second.
        self._mtime += 1
        os.utime(target, (self._mtime, self._mtime))

    def commit_payload(self, message: str) -> None:
        started = time.perf_counter()
        git(self.path, "add", PAYLOAD_NAME)
        git(self.path, "commit", "-q", "-m", message)
        self.commit_seconds.append(time.perf_counter() - started)
        if git(self.path, "status", "--porcelain").strip():
            raise BenchError(f"the checkout {self.path} is dirty after a commit")


def settle() -> None:
    # Flush what the set-up wrote (64-128 MB of payload and git objects), so its writeback
    # does not land in the timed window of whichever side runs next.
    os.sync()


# --------------------------------------------------------------------------- the sides


@dataclass
class Sides:
    imgtag: list[str]
    docker: str
    imgtag_image: str
    docker_image: str
    env: dict[str, str]
    docker_labels: bool = False
    imgtag_samples: list[float] = field(default_factory=list)
    docker_samples: list[float] = field(default_factory=list)
    build_samples: list[float] = field(default_factory=list)
    push_samples: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    def imgtag_argv(self, build: int, *extra: str) -> list[str]:
        return [
            *self.imgtag,
            "build-push",
            self.imgtag_image,
            "--build",
            str(build),
            "--no-lint",
            # The classic builder against `docker build` on the same engine; buildah has
            # its own benchmark (bench_build_push_buildah.py).
            "--builder",
            "docker",
            *extra,
        ]


def imgtag_phases(result: Run) -> dict[str, float] | None:
    """Split one imgtag run at its progress lines; None when a marker is missing."""

    def first(pattern: re.Pattern[str], after: float = 0.0) -> float | None:
        return next((t for t, line in result.stderr if t >= after and pattern.search(line)), None)

    b0 = first(MARK_BUILD)
    b1 = first(MARK_BUILT, b0 or 0.0)
    p0 = first(MARK_PUSH, b1 or 0.0)
    p1 = first(MARK_PUSHED, p0 or 0.0)
    if b0 is None or b1 is None or p0 is None or p1 is None:
        return None
    labels = first(MARK_LABELS, b0)
    # No label step (an engine that applies labels without one): the phase is zero.
    bl = labels if labels is not None and labels <= b1 else b1
    points = (0.0, b0, bl, b1, p0, p1, result.elapsed)
    return {name: points[i + 1] - points[i] for i, (name, _) in enumerate(PHASES)}


def run_imgtag(sides: Sides, ctx: Context, build: int, timed: bool) -> None:
    ctx.fresh_payload()
    ctx.commit_payload(f"round {build}")
    settle()
    result = check(run(sides.imgtag_argv(build), ctx.path, sides.env), "imgtag build-push")
    expected = f"{sides.imgtag_image}:{EXPECTED_VERSION}-{build}@sha256:"
    printed = result.stdout.strip()
    if not printed.startswith(expected):
        raise BenchError(f"imgtag printed {printed!r}, expected {expected}...: not the same work")
    sides.outputs["imgtag"] = printed
    if timed:
        sides.imgtag_samples.append(result.elapsed)
        phases = imgtag_phases(result)
        if phases is not None:
            sides.phases.append(phases)


def run_docker(sides: Sides, ctx: Context, build: int, timed: bool) -> None:
    ctx.fresh_payload()
    settle()
    ref = f"{sides.docker_image}:{build}"
    labels: list[str] = []
    if sides.docker_labels:
        values = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "revision": git(ctx.path, "rev-parse", "HEAD").strip(),
            "title": "docker",
            "version": f"{EXPECTED_VERSION}-{build}",
        }
        for key in OCI_LABEL_KEYS:
            labels += ["--label", f"org.opencontainers.image.{key}={values[key]}"]
    argv = [sides.docker, "build", *labels, "-t", ref, "."]
    built = check(run(argv, ctx.path, sides.env), "docker build")
    pushed = check(run([sides.docker, "push", ref], ctx.path, sides.env), "docker push")
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed.stdout)
    sides.outputs["docker"] = f"{ref}@{digest.group(1) if digest else '?'}"
    if timed:
        # `docker build ... && docker push ...`: the two processes back to back.
        sides.docker_samples.append(built.elapsed + pushed.elapsed)
        sides.build_samples.append(built.elapsed)
        sides.push_samples.append(pushed.elapsed)


def remove_images(sides: Sides, ctx: Context, build: int) -> None:
    # Keep the engine's image store the same size every round (and a long-lived bed's disk
    # bounded). --no-prune keeps the cached busybox step that both sides reuse.
    refs = [f"{sides.imgtag_image}:{EXPECTED_VERSION}-{build}", f"{sides.docker_image}:{build}"]
    subprocess.run(
        [sides.docker, "rmi", "--no-prune", *refs],
        cwd=ctx.path,
        env=sides.env,
        capture_output=True,
        check=False,
    )


# --------------------------------------------------------------------------- overhead


def measure_overhead(
    sides: Sides, ctx: Context, python: str, repeats: int, first_build: int
) -> dict[str, dict[str, Any]]:
    """Median times of the fixed costs imgtag pays on top of the engine's work."""
    # The dry run needs a clean tree (the docker side left a new payload behind).
    ctx.fresh_payload()
    ctx.commit_payload("overhead")
    settle()
    commands: dict[str, list[str]] = {
        "python -c pass": [python, "-c", "pass"],
        "import tagger.cli": [python, "-c", "import tagger.cli"],
        "import docker": [python, "-c", "import docker"],
    }
    samples: dict[str, list[float]] = {name: [] for name in [*commands, "build-push --dry-run"]}
    for i in range(repeats):
        for name, argv in commands.items():
            samples[name].append(check(run(argv, ctx.path, sides.env), name).elapsed)
        # A tag that is not in the registry, so the dry run does the whole existence check.
        dry = sides.imgtag_argv(first_build + i, "--dry-run")
        samples["build-push --dry-run"].append(
            check(run(dry, ctx.path, sides.env), "imgtag build-push --dry-run").elapsed
        )
    return {
        name: {"median_ms": median_ms(s), "samples_ms": [round(x * 1000, 1) for x in s]}
        for name, s in samples.items()
    }


# --------------------------------------------------------------------------- report


def summarise(sides: Sides) -> dict[str, Any]:
    def entry(samples: Sequence[float]) -> dict[str, Any]:
        return {
            "median_s": round(statistics.median(samples), 3),
            "min_s": round(min(samples), 3),
            "max_s": round(max(samples), 3),
            "samples_s": [round(x, 3) for x in samples],
        }

    results = {
        "imgtag": entry(sides.imgtag_samples),
        "docker_build_push": entry(sides.docker_samples),
        "docker_build": entry(sides.build_samples),
        "docker_push": entry(sides.push_samples),
    }
    phases: dict[str, float] = {}
    if sides.phases:
        phases = {
            name: round(statistics.median(p[name] for p in sides.phases), 3) for name, _ in PHASES
        }
    samples = [{name: round(p[name], 3) for name, _ in PHASES} for p in sides.phases]
    return {"results": results, "imgtag_phases_s": phases, "imgtag_phase_samples_s": samples}


def print_report(doc: dict[str, Any]) -> None:
    res, setup = doc["results"], doc["setup"]
    print(
        f"engine {setup['docker_host']} (docker {setup['engine_version']}), "
        f"registry {setup['registry']}"
    )
    print(
        f"docker CLI {setup['docker_cli']} ({setup['docker_client_version']}, classic builder); "
        f"context FROM scratch + busybox + {setup['payload_mb']} MB random, fresh per command"
    )
    if setup["docker_labels"]:
        print(
            "docker build gets imgtag's four OCI labels too (--docker-labels), so the ratio "
            "below is not the contract's one"
        )
    print(
        f"\n{doc['rounds']} rounds after {doc['warmup']} warm-up, interleaved (alternating which "
        "side goes first); each command a fresh process\n"
    )
    rows = (
        ("imgtag build-push", res["imgtag"]),
        ("docker build + push", res["docker_build_push"]),
        ("  docker build", res["docker_build"]),
        ("  docker push", res["docker_push"]),
    )
    print(f"{'command':<20}  {'median s':>8}  {'min s':>6}  {'max s':>6}")
    for label, r in rows:
        print(f"{label:<20}  {r['median_s']:>8.3f}  {r['min_s']:>6.3f}  {r['max_s']:>6.3f}")
    target = doc["target"]
    verdict = {True: "met", False: "MISSED", None: "not judged"}[target["met"]]
    print(
        f"\nimgtag / (docker build + push)  {doc['ratio']:.3f}x   target <= {target['max']:.2f}x: "
        f"{verdict}   (difference {doc['difference_s']:+.3f} s)"
    )
    if doc["imgtag_phases_s"]:
        print("\nimgtag phases (medians, from the arrival of its stderr progress lines):")
        for name, label in PHASES:
            print(f"  {label:<42} {doc['imgtag_phases_s'][name]:>7.3f} s")
    if doc["overhead"]:
        print("\nfixed overhead (medians of fresh processes):")
        for name, r in doc["overhead"].items():
            print(f"  {name:<42} {r['median_ms']:>7.1f} ms")
    print(
        f"\nlast outputs:\n  imgtag: {doc['outputs'].get('imgtag')}\n"
        f"  docker: {doc['outputs'].get('docker')}"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time `imgtag build-push` against `docker build` + `docker push` of the "
        "same 64 MB context (benchmarks/README.md).",
    )
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    p.add_argument(
        "--registry",
        metavar="HOST:PORT",
        help="registry of a running bed (with DOCKER_HOST); default IMGTAG_TESTBED_PLAIN, "
        "else the script starts tests/testbed.py itself",
    )
    p.add_argument(
        "--docker",
        metavar="PATH",
        help=f"docker CLI (default: the first that works of {', '.join(DOCKER_CANDIDATES)})",
    )
    p.add_argument(
        "--imgtag",
        metavar="CMD",
        help="how to run imgtag, e.g. 'python -m tagger' (default: the imgtag script next "
        "to this Python, else on PATH)",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter for the start-up measurements (default: this one)",
    )
    p.add_argument(
        "--docker-labels",
        action="store_true",
        help="give `docker build` the same four OCI labels imgtag adds (one LABEL step each "
        "in the classic builder), to see imgtag's overhead apart from the labels' cost",
    )
    p.add_argument("--payload-mb", type=int, default=64, help="random file size (default 64)")
    p.add_argument(
        "--overhead-runs",
        type=int,
        default=5,
        help="repetitions of each fixed-overhead measurement; 0 skips them (default 5)",
    )
    p.add_argument("--workdir", type=Path, help="where the checkout goes (default: a temp dir)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0 or args.overhead_runs < 0 or args.payload_mb < 1:
        p.error("--rounds and --payload-mb must be >= 1, --warmup and --overhead-runs >= 0")
    return args


def bench(args: argparse.Namespace, bed: Bed, workdir: Path) -> int:
    env = clean_env({**bed.env(), "DOCKER_BUILDKIT": "0"})
    # DOCKER_BUILDKIT=0: the docker SDK that imgtag drives posts to the engine's classic
    # /build endpoint; the CLI must use the same builder or the ratio compares builders.
    candidates = [args.docker] if args.docker else list(DOCKER_CANDIDATES)
    docker, client_version, engine_version = pick_docker(candidates, env)
    log(f"docker CLI {docker} (client {client_version}, engine {engine_version})")
    imgtag = shlex.split(args.imgtag) if args.imgtag else [find_tool("imgtag") or ""]
    if not imgtag[0]:
        raise BenchError("imgtag not found next to this Python or on PATH: pip install -e .")
    if not BUSYBOX.is_file():
        raise BenchError(f"{BUSYBOX} is missing: apt-get install busybox-static")

    # A repository path of its own per invocation: on a long-lived bed the tags of an
    # earlier run would make imgtag refuse (exit 3) instead of building.
    run_id = time.strftime("r%Y%m%d-%H%M%S")
    namespace = f"{bed.registry}/bench/{run_id}"
    sides = Sides(
        imgtag, docker, f"{namespace}/imgtag", f"{namespace}/docker", env, args.docker_labels
    )
    ctx = Context(workdir / "context", args.payload_mb)
    ctx.create()
    log(f"context {ctx.path}; images {namespace}/{{imgtag,docker}}")

    total = args.warmup + args.rounds
    for r in range(total):
        timed = r >= args.warmup
        order = (run_imgtag, run_docker) if r % 2 == 0 else (run_docker, run_imgtag)
        for side in order:
            side(sides, ctx, r, timed)
        remove_images(sides, ctx, r)
        last = ""
        if timed:
            last = (
                f": imgtag {sides.imgtag_samples[-1]:.2f} s, docker build + push "
                f"{sides.docker_samples[-1]:.2f} s"
            )
        log(f"round {r + 1}/{total}{' (warm-up)' if not timed else ''}{last}")

    overhead: dict[str, dict[str, Any]] = {}
    if args.overhead_runs:
        log("measuring fixed overhead ...")
        overhead = measure_overhead(sides, ctx, args.python, args.overhead_runs, 1000)

    summary = summarise(sides)
    own = summary["results"]["imgtag"]["median_s"]
    peer = summary["results"]["docker_build_push"]["median_s"]
    ratio = round(own / peer, 3)
    doc = {
        "benchmark": "build-push",
        "setup": {
            "docker_host": bed.docker_host,
            "registry": bed.registry,
            "bed_started_here": bed.started_here,
            "docker_cli": docker,
            "docker_client_version": client_version,
            "engine_version": engine_version,
            "imgtag": imgtag,
            "payload_mb": args.payload_mb,
            "images": [sides.imgtag_image, sides.docker_image],
            "docker_labels": args.docker_labels,
            "git_commit_median_s": round(statistics.median(ctx.commit_seconds), 3),
        },
        "rounds": args.rounds,
        "warmup": args.warmup,
        **summary,
        "ratio": ratio,
        "difference_s": round(own - peer, 3),
        "target": {
            "ratio": "imgtag/docker_build_push",
            "max": TARGET_MAX_RATIO,
            # Against a labelled docker build the ratio is not the contract's: no verdict.
            "met": None if args.docker_labels else ratio <= TARGET_MAX_RATIO,
        },
        "overhead": overhead,
        "outputs": sides.outputs,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print_report(doc)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with open_bed(args) as bed:
            if args.workdir is not None:
                args.workdir.mkdir(parents=True, exist_ok=True)
                work = Path(tempfile.mkdtemp(prefix="bench-build-push-", dir=args.workdir))
                return bench(args, bed, work)
            with tempfile.TemporaryDirectory(prefix="imgtag-bench-build-push-") as tmp:
                return bench(args, bed, Path(tmp))
    except BenchError as exc:
        log(f"bench_build_push.py: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
