"""Small helpers the benchmarks share: finding tools, logging, loading the test bed.

No I/O at import; ``load_testbed`` reads ``tests/testbed.py`` from its file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTBED_SCRIPT = REPO_ROOT / "tests" / "testbed.py"


class BenchError(Exception):
    """A benchmark cannot go on: a tool is missing, a command failed, a result is wrong."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def find_tool(name: str) -> str | None:
    """A console script next to this interpreter first, then on PATH.

    `pip install -e '.[bench]'` puts `imgtag` and `dunamai` into the interpreter's bin
    directory; looking there first lets `venv/bin/python benchmarks/bench_x.py` work
    without activating the venv, and keeps all tools from one installation.
    """
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def load_testbed() -> ModuleType:
    # tests/ is no package; load the module from its file (it needs the stdlib only to start).
    spec = importlib.util.spec_from_file_location("imgtag_testbed", TESTBED_SCRIPT)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot load {TESTBED_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def started_bed() -> Iterator[Any]:
    """Start tests/testbed.py's bed (dockerd and registries on 127.0.0.1) for one benchmark
    run, and stop it afterwards; a bed that cannot start is a :class:`BenchError`."""
    testbed = load_testbed()
    log("starting the test bed (tests/testbed.py): dockerd and registries on 127.0.0.1 ...")
    started = time.perf_counter()
    try:
        bed = testbed.start()
    except testbed.TestbedError as exc:
        raise BenchError(str(exc)) from None
    log(f"test bed up in {time.perf_counter() - started:.1f} s ({bed.root})")
    try:
        yield bed
    finally:
        bed.stop()
        log("test bed stopped")
