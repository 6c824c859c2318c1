"""``imgtag check``'s executor: inspect the image, run what needs containers, judge the
rest, and always remove what it started. Does I/O (the engine, through ``Engine``).

The runtime checks start their containers first and the structure tests run while those
settle (:data:`~tagger.check.settings.SETTLE_SECONDS`), so the settle costs nothing when
there are tests to run; containers are started and waited for by a few threads at once.
Signals: the caller routes them to a raising ``Stop``; the ``finally`` below removes every
container and image of the run (shielded, so a second stop cannot cut the removal short)
before the run exits 130/143/129.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from tagger.check import runtime
from tagger.check import structure as st
from tagger.check.results import CHECKS, Report, Result, skipped
from tagger.check.settings import SETTLE_SECONDS, CheckSettings
from tagger.check.static import ImageFacts, chk003, chk004, chk005

if TYPE_CHECKING:
    from tagger.engine import Engine
    from tagger.lifecycle import Stop

STATIC = {"CHK003": chk003, "CHK004": chk004, "CHK005": chk005}
#: Containers started side by side: the engine does the work, this process mostly waits.
WORKERS = 4


def load_structure(settings: CheckSettings) -> st.StructureFile | None:
    """The ``--config`` file, read and checked (exit 2 for anything it cannot run)."""
    return st.load(settings.config) if settings.config else None


def static_results(facts: ImageFacts, settings: CheckSettings) -> dict[str, Result]:
    return {
        cid: skipped(cid, title, "ignored (--ignore)")
        if cid in settings.ignore
        else STATIC[cid](facts)
        for cid, title in ((c.id, c.title) for c in CHECKS if not c.runtime)
    }


def check_image(
    engine: Engine,
    image: str,
    settings: CheckSettings,
    structure: st.StructureFile | None = None,
    *,
    stop: Stop | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] = lambda _line: None,
) -> Report:
    """Every CHK check and structure test on ``image``, a local image of ``engine``."""
    import contextlib

    doc = engine.inspect_image(image)  # exit 2 for a missing image, 6 for no engine
    facts = ImageFacts.from_config(doc.get("Config"))
    image_id = str(doc.get("Id", ""))
    by_id: dict[str, Result] = static_results(facts, settings)
    extra: list[Result] = []
    sandbox = runtime.Sandbox(engine)
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="imgtag-check")
    try:
        starting: dict[str, Future[runtime.Started]] = {}
        for check in CHECKS:
            if not check.runtime:
                continue
            if check.id in settings.ignore:
                by_id[check.id] = skipped(check.id, check.title, "ignored (--ignore)")
                continue
            user = settings.user if check.id == "CHK002" else None
            progress(f"check: {check.id}: starting {image} with --network none")
            starting[check.id] = pool.submit(runtime.start, sandbox, check.id, image_id, user)
        if structure is not None:
            extra = _structure(pool, sandbox, image_id, structure, facts, progress)
        started = {cid: future.result() for cid, future in starting.items()}
        runtime.settle(list(started.values()), SETTLE_SECONDS, sleep)
        judged: dict[str, Future[Result]] = {}
        if "CHK002" in started:
            judged["CHK002"] = pool.submit(
                runtime.chk002, engine, started["CHK002"], facts, settings.user, settings.writable
            )
        if "CHK001" in started:
            progress(f"check: CHK001: stopping with a {settings.stop_timeout:g} s grace period")
            judged["CHK001"] = pool.submit(
                runtime.chk001, engine, started["CHK001"], facts, settings.stop_timeout
            )
        by_id.update({cid: future.result() for cid, future in judged.items()})
    finally:
        # Work not begun is dropped; work in flight ends when its container goes.
        pool.shutdown(wait=False, cancel_futures=True)
        shield = stop.shielded() if stop is not None else contextlib.nullcontext()
        with shield:
            sandbox.clear()
    if stop is not None:
        stop.check()
    ordered = [by_id[c.id] for c in CHECKS]
    return Report(image, image_id, [*ordered, *extra])


def _structure(
    pool: ThreadPoolExecutor,
    sandbox: runtime.Sandbox,
    image_id: str,
    file: st.StructureFile,
    facts: ImageFacts,
    progress: Callable[[str], None],
) -> list[Result]:
    """The file's tests, reported in the binary's order (commands, file contents, file
    existence, metadata). Each command test is a container of its own, as in the binary;
    they run side by side here, the file tests beside them through one container."""
    globals_ = st.global_env(file, facts.env)
    commands: list[Future[Result]] = []
    for i, test in enumerate(file.command_tests):
        progress(f"check: {test.log_name}")
        commands.append(
            pool.submit(runtime.run_command_test, sandbox, image_id, test, facts.env, globals_, i)
        )
    files: Future[list[Result]] | None = None
    if file.file_content_tests or file.file_existence_tests:
        reader = runtime.Files(sandbox, image_id)
        files = pool.submit(runtime.run_file_tests, reader, file, {**facts.env, **globals_})
    results = [future.result() for future in commands]
    if files is not None:
        results.extend(files.result())
    if not file.metadata.empty:
        results.append(metadata_result(file, facts))
    return results


def metadata_result(file: st.StructureFile, facts: ImageFacts) -> Result:
    from tagger.check.results import failed, passed

    test = file.metadata
    errors = test.invalid() or st.judge_metadata(test, facts)
    return (failed if errors else passed)("metadataTest", test.log_name, *errors)


def skipped_runtime(
    facts: ImageFacts, settings: CheckSettings, structure: st.StructureFile | None, why: str
) -> list[Result]:
    """The report where no engine can run the image (build-push's buildah builder): the
    static checks and the metadata test judged, everything that needs a container skipped."""
    by_id = static_results(facts, settings)
    for check in CHECKS:
        if check.runtime:
            reason = "ignored (--ignore)" if check.id in settings.ignore else why
            by_id[check.id] = skipped(check.id, check.title, reason)
    out = [by_id[c.id] for c in CHECKS]
    if structure is not None:
        for i, c in enumerate(structure.command_tests):
            out.append(skipped(f"commandTests[{i}]", c.log_name, why))
        for i, fc in enumerate(structure.file_content_tests):
            out.append(skipped(f"fileContentTests[{i}]", fc.log_name, why))
        for i, fe in enumerate(structure.file_existence_tests):
            out.append(skipped(f"fileExistenceTests[{i}]", fe.log_name, why))
        if not structure.metadata.empty:
            out.append(metadata_result(structure, facts))
    return out
