"""What needs containers: CHK001, CHK002 and the structure tests. Does I/O (the engine,
through a ``tagger.engine.Engine``).

Every container and image made here carries the run's label and is recorded in a
:class:`Sandbox`, whose :meth:`Sandbox.clear` removes them all, also those whose creation
a signal interrupted (it asks the engine for the label, not only its own list).
"""

from __future__ import annotations

import contextlib
import io
import posixpath
import secrets
import tarfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tagger.check import structure as st
from tagger.check.results import Result, failed, passed, title
from tagger.check.static import ImageFacts
from tagger.errors import EngineError

if TYPE_CHECKING:
    from tagger.engine import Engine

LABEL = "io.imgtag.check"
#: Exit status of a process the engine killed with SIGKILL (128 + 9).
KILLED = 137


class SandboxClosed(Exception):
    """A worker asked for a container after the run began its clean-up."""


class Sandbox:
    """The containers and images of one check run, removed by :meth:`clear`.

    Workers create containers from several threads; :meth:`clear` first closes the
    sandbox (a later :meth:`create` raises :class:`SandboxClosed` without asking the
    engine) and waits for creations in flight, so no container appears after the clean-up
    listed them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.run_id = secrets.token_hex(6)
        self.containers: list[str] = []
        self.images: list[str] = []
        self._closed = False
        self._creating = 0
        self._cond = threading.Condition()

    @property
    def label(self) -> str:
        return f"{LABEL}={self.run_id}"

    def create(self, image: str, **kwargs: Any) -> str:
        with self._cond:
            if self._closed:
                raise SandboxClosed()
            self._creating += 1
        try:
            container = self.engine.create_container(image, labels={LABEL: self.run_id}, **kwargs)
            self.containers.append(container)
        finally:
            with self._cond:
                self._creating -= 1
                self._cond.notify_all()
        return container

    def remove(self, container: str) -> None:
        self.engine.remove_container(container)
        with contextlib.suppress(ValueError):
            self.containers.remove(container)

    def clear(self, wait: float = 30.0) -> None:
        """Remove everything this run made. Never raises."""
        with self._cond:
            self._closed = True
            self._cond.wait_for(lambda: self._creating == 0, timeout=wait)
        found: list[str] = []
        with contextlib.suppress(Exception):
            found = self.engine.containers_labelled(self.label)
        for container in dict.fromkeys([*self.containers, *found]):
            self.engine.remove_container(container)
        self.containers.clear()
        for image in reversed(self.images):
            self.engine.remove_image(image)
        self.images.clear()


# --- CHK001 and CHK002 ------------------------------------------------------------------


@dataclass
class Started:
    """A container started for a CHK check, or why it could not start."""

    check_id: str
    container: str | None
    started_at: float
    error: str | None = None


def start(sandbox: Sandbox, check_id: str, image: str, user: str | None) -> Started:
    """Create and start a detached container with no network (``user`` ``None``: the
    image's own)."""
    try:
        container = sandbox.create(image, user=user, network_mode="none")
    except EngineError as exc:  # no command at all: the engine refuses to create it
        return Started(check_id, None, time.monotonic(), str(exc))
    try:
        sandbox.engine.start_container(container)
    except EngineError as exc:
        return Started(check_id, container, time.monotonic(), str(exc))
    return Started(check_id, container, time.monotonic())


def _exited(engine: Engine, container: str) -> tuple[bool, int, str]:
    state = engine.container_state(container)
    return (
        bool(state.get("Running")),
        int(state.get("ExitCode") or 0),
        str(state.get("Error") or ""),
    )


def _log_tail(engine: Engine, container: str) -> str:
    out, err = engine.container_logs(container)
    lines = (out + err).strip().splitlines()
    return " | ".join(lines[-3:])[:300]


def chk001(engine: Engine, started: Started, facts: ImageFacts, timeout: float) -> Result:
    """Stop the container as ``docker stop -t TIMEOUT`` does and judge how it ended."""
    name = title("CHK001")
    signal_name = facts.stop_signal or "SIGTERM"
    if started.error or started.container is None:
        return failed("CHK001", name, f"the image does not start: {started.error}")
    running, code, error = _exited(engine, started.container)
    if not running:
        if code == 0:
            return passed(
                "CHK001", name, "PID 1 exited on its own with status 0 before the stop: a job"
            )
        tail = _log_tail(engine, started.container)
        return failed(
            "CHK001",
            name,
            f"PID 1 exited on its own with status {code} before the stop"
            + (f": {tail or error}" if tail or error else ""),
        )
    began = time.monotonic()
    engine.stop_container(started.container, timeout)
    took = time.monotonic() - began
    _, code, _ = _exited(engine, started.container)
    if code == KILLED:
        return failed(
            "CHK001",
            name,
            f"PID 1 ({' '.join(facts.argv) or 'no command'}) ignored {signal_name}: the engine "
            f"killed it after the {timeout:g} s grace period (exit status 137, {took:.2f} s)",
            seconds=took,
        )
    return passed(
        "CHK001",
        name,
        f"PID 1 stopped on {signal_name} in {took:.2f} s with exit status {code}",
        seconds=took,
    )


def _first_entry(archive: bytes | None) -> st.Entry | None:
    if archive is None:
        return None
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        for member in tar:
            return _entry(member)
    return None


def _entry(member: tarfile.TarInfo) -> st.Entry:
    return st.Entry(
        name=member.name,
        type=member.type,
        mode=member.mode,
        uid=member.uid,
        gid=member.gid,
        linkname=member.linkname,
    )


def _resolve(engine: Engine, container: str, path: str) -> tuple[str, st.Entry | None]:
    """``path``'s header, symbolic links followed (at most 16)."""
    for _ in range(16):
        entry = _first_entry(engine.container_archive(container, path))
        if entry is None or entry.type != tarfile.SYMTYPE:
            return path, entry
        target = entry.linkname
        path = target if target.startswith("/") else posixpath.join(posixpath.dirname(path), target)
        path = posixpath.normpath(path)
    return path, None


def writable_by(entry: st.Entry, uid: int, gid: int) -> bool:
    """Whether uid:gid may create files in a directory with this header.

    >>> group, owner = st.Entry("app", b"5", 0o40775, 0, 0), st.Entry("a", b"5", 0o40755, 0, 0)
    >>> writable_by(group, 1000680000, 0), writable_by(owner, 1000680000, 0)
    (True, False)
    """
    if entry.mode & 0o002:
        return True
    if entry.gid == gid and entry.mode & 0o020:
        return True
    return entry.uid == uid and bool(entry.mode & 0o200)


def chk002(
    engine: Engine, started: Started, facts: ImageFacts, user: str, writable: Sequence[str]
) -> Result:
    name = title("CHK002")
    uid_text, _, gid_text = user.partition(":")
    uid, gid = int(uid_text), int(gid_text or 0)
    problems: list[str] = []
    notes: list[str] = []
    if started.error or started.container is None:
        return failed("CHK002", name, f"it does not start under --user {user}: {started.error}")
    running, code, error = _exited(engine, started.container)
    if not running and code != 0:
        tail = _log_tail(engine, started.container)
        problems.append(
            f"under --user {user} PID 1 exited with status {code}"
            + (f": {tail or error}" if tail or error else "")
        )
    elif not running:
        notes.append(f"under --user {user} PID 1 exited on its own with status 0")
    else:
        notes.append(f"runs under --user {user}")
    paths: dict[str, str] = {}
    # "/" is where a container starts without a WORKDIR (BuildKit writes it out): the
    # image has no working directory of its own to write to.
    if facts.workdir and facts.workdir != "/":
        paths.setdefault(facts.workdir, "WORKDIR")
    for volume in facts.volumes:
        paths.setdefault(volume, "VOLUME")
    for path in writable:
        paths.setdefault(path, "--writable")
    for path, why in paths.items():
        real, entry = _resolve(engine, started.container, path)
        shown = path if real == path else f"{path} (-> {real})"
        if entry is None:
            problems.append(f"{why} {shown} does not exist in the image")
        elif entry.type != tarfile.DIRTYPE:
            if not writable_by(entry, uid, gid):
                problems.append(f"{why} {shown} is not writable for {user}")
        elif not writable_by(entry, uid, gid):
            problems.append(
                f"{why} {shown} is owned by {entry.uid}:{entry.gid} with mode "
                f"{entry.mode & 0o7777:04o}: not writable for {user} (group 0 needs g+w)"
            )
        else:
            notes.append(f"{why} {shown} is writable")
    if problems:
        return failed("CHK002", name, *problems)
    if not paths:
        notes.append("no WORKDIR, VOLUME or --writable path to write-check")
    return passed("CHK002", name, *notes)


# --- the structure tests ----------------------------------------------------------------


def run_command_test(
    sandbox: Sandbox,
    image: str,
    test: st.CommandTest,
    image_env: Mapping[str, str],
    global_env: Mapping[str, str],
    index: int,
) -> Result:
    """One command test as the binary runs it: the set-up commands each committed, then
    the command with the image's entrypoint cleared; stdout, stderr and the exit status."""
    rid = f"commandTests[{index}]"
    invalid = test.invalid()
    if invalid:
        return failed(rid, test.log_name or test.name, *invalid)
    engine = sandbox.engine
    began = time.monotonic()
    current = image
    expand_env = {**image_env, **global_env}
    setup_env = {e.key: st.expand(e.value, st.env_lookup(expand_env)) for e in test.env_vars}
    try:
        for command in test.setup:
            container = sandbox.create(
                current, command=command, entrypoint=[""], env={**global_env, **setup_env}
            )
            engine.start_container(container)
            engine.wait_container(container)
            current = engine.commit_container(container)
            sandbox.images.append(current)
            sandbox.remove(container)
        env = {**global_env, **{e.key: e.value for e in test.env_vars}}
        argv = st.command_argv(test, expand_env)
        container = sandbox.create(current, command=argv, entrypoint=[""], env=env)
        engine.start_container(container)
        code = engine.wait_container(container)
        stdout, stderr = engine.container_logs(container)
        sandbox.remove(container)
    except EngineError as exc:
        return failed(rid, test.log_name, str(exc), seconds=time.monotonic() - began)
    errors = st.check_output(test, stdout, stderr, code)
    took = time.monotonic() - began
    verdict = failed if errors else passed
    result = verdict(rid, test.log_name, *errors, seconds=took)
    return Result(result.id, result.name, result.verdict, result.details, took, stdout, stderr)


class Files:
    """Reads the image's files through one created (never started) container."""

    def __init__(self, sandbox: Sandbox, image: str) -> None:
        self.sandbox, self.image = sandbox, image
        self._container: str | None = None

    @property
    def container(self) -> str:
        if self._container is None:
            self._container = self.sandbox.create(self.image, command=["imgtag-check-noop"])
        return self._container

    def members(self, path: str) -> list[tuple[tarfile.TarInfo, bytes | None]] | None:
        archive = self.sandbox.engine.container_archive(self.container, path)
        if archive is None:
            return None
        out = []
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            for member in tar:
                data = None
                if member.isreg():
                    fh = tar.extractfile(member)
                    data = fh.read() if fh else b""
                out.append((member, data))
        return out


_STAT_TYPES = (tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE)


def _base(path: str) -> str:
    """Go's ``path.Base``."""
    if not path:
        return "."
    path = path.rstrip("/")
    if not path:
        return "/"
    return path.rsplit("/", 1)[-1]


def _clean(name: str) -> str:
    return posixpath.normpath(name) if name else "."


def stat_file(files: Files, path: str) -> tuple[st.Entry | None, str]:
    members = files.members(path)
    if members is None:
        return None, f"Error retrieving file from container: no such path {path}"
    for member, _ in members:
        if member.type in _STAT_TYPES and _clean(member.name) == _base(path):
            return _entry(member), ""
    return None, f"File {path} not found in image"


def read_file(files: Files, path: str, depth: int = 0) -> tuple[str | None, str]:
    members = files.members(path)
    if members is None:
        return None, f"Error retrieving file from container: no such path {path}"
    for member, data in members:
        if member.isdir() and _clean(member.name) == _base(path):
            return None, f"Cannot read specified path: {path} is a directory, not a file"
        if member.issym():
            if depth > 16:
                return None, f"too many symbolic links at {path}"
            return read_file(files, member.linkname, depth + 1)
        if (member.isreg() or member.islnk()) and _clean(member.name) == _base(path):
            return (data or b"").decode("utf-8", "replace"), ""
    return None, f"File {path} not found in image"


def run_file_tests(files: Files, file: st.StructureFile, env: Mapping[str, str]) -> list[Result]:
    results = []
    lookup = st.env_lookup(env)
    for i, test in enumerate(file.file_content_tests):
        rid = f"fileContentTests[{i}]"
        if invalid := test.invalid():
            results.append(failed(rid, test.log_name, *invalid))
            continue
        content, error = read_file(files, test.path)
        errors = st.judge_content(test, content, error)
        results.append((failed if errors else passed)(rid, test.log_name, *errors))
    for i, existence in enumerate(file.file_existence_tests):
        rid = f"fileExistenceTests[{i}]"
        if invalid := existence.invalid():
            results.append(failed(rid, existence.log_name, *invalid))
            continue
        entry, error = stat_file(files, st.expand(existence.path, lookup))
        errors = st.judge_existence(existence, entry, error)
        results.append((failed if errors else passed)(rid, existence.log_name, *errors))
    return results


def settle(started: Sequence[Started], seconds: float, sleep: Callable[[float], None]) -> None:
    """Wait until each started container has had ``seconds`` to start (or fail to)."""
    if not started:
        return
    left = max(s.started_at for s in started) + seconds - time.monotonic()
    if left > 0:
        sleep(left)
