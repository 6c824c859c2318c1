"""The Docker engine: build, tag and push through the docker SDK. Does I/O.

The only module that imports ``docker``, and only when an :class:`Engine` is first
used: the SDK contacts the engine as soon as a client is created, and importing it takes
a noticeable part of a second, which ``imgtag next`` must never pay (figures in
``benchmarks/README.md``, "Measurements behind design choices").

The engine is found as the docker CLI finds it: ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY``
and ``DOCKER_CERT_PATH``), else the current docker context. ``push()`` in the SDK does
not raise when the push fails: every stream line is checked for ``error``/``errorDetail``.
Every call to the engine runs inside :func:`_engine_errors`, so whatever the SDK or the
HTTP stack under it raises is an :class:`EngineError` (exit 6), or an
:class:`ImageNotFoundError` (exit 2) where a missing image is the user's mistake.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from tagger.errors import EngineError, ImageNotFoundError, redact

Progress = Callable[[str], None]


def stderr_progress(line: str) -> None:
    """Build and push progress to stderr, through the one progress logger."""
    from tagger.progress import log

    log(line)


@dataclass(frozen=True, slots=True)
class BuildResult:
    image_id: str


class Engine:
    """A lazily connected Docker engine."""

    def __init__(self, env: Mapping[str, str] | None = None, timeout: float = 600.0) -> None:
        self._env = dict(os.environ if env is None else env)
        self._timeout = timeout
        self._api: Any = None

    def close(self) -> None:
        """Close the connection to the engine (a later call connects again). Never raises."""
        api, self._api = self._api, None
        if api is not None:
            with contextlib.suppress(Exception):
                api.close()

    @property
    def api(self) -> Any:
        """The SDK's low-level ``APIClient`` (connected on first use)."""
        if self._api is None:
            self._api = self._connect()
        return self._api

    def _connect(self) -> Any:
        import docker
        from docker.utils import kwargs_from_env

        try:
            if self._env.get("DOCKER_HOST"):
                kwargs = kwargs_from_env(environment=self._env)
                where = self._env["DOCKER_HOST"]
            else:
                kwargs, where = _context_kwargs()
            api = docker.APIClient(version="auto", timeout=self._timeout, **kwargs)
        except docker.errors.DockerException as exc:
            where = self._env.get("DOCKER_HOST") or "the docker context's engine"
            raise EngineError(
                f"cannot reach the Docker engine at {where} ({_reason(exc)}): start dockerd, "
                "or set DOCKER_HOST or a docker context"
            ) from None
        except Exception as exc:  # requests' connection errors while negotiating the API
            raise EngineError(
                f"cannot reach the Docker engine at {where} ({type(exc).__name__}): start "
                "dockerd, or set DOCKER_HOST or a docker context"
            ) from None
        return api

    def build(
        self,
        *,
        context: str,
        dockerfile: str | None,
        tag: str,
        buildargs: Mapping[str, str],
        target: str | None,
        labels: Mapping[str, str],
        network_mode: str | None = None,
        cache_from: list[str] | None = None,
        nocache: bool = False,
        pull: bool = False,
        progress: Progress = stderr_progress,
    ) -> BuildResult:
        """Build ``context`` and tag the result ``tag``; stream the build log to ``progress``.

        ``network_mode``: the network of RUN steps (``--network``), the engine's default
        when ``None``."""
        image_id = ""
        labelled = dockerfile_with_labels(context, dockerfile, target, labels)
        try:
            with (
                _engine_errors("the build failed", also=(OSError,)),
                _streamed_context(context, labelled.path if labelled else dockerfile) as (
                    body,
                    dockerfile_param,
                ),
            ):
                stream = self.api.build(
                    fileobj=body,
                    custom_context=True,
                    dockerfile=dockerfile_param,
                    tag=tag,
                    buildargs=dict(buildargs),
                    target=target,
                    labels=None if labelled else dict(labels),
                    rm=True,
                    forcerm=True,
                    decode=True,
                    network_mode=network_mode,
                    cache_from=cache_from,
                    nocache=nocache,
                    pull=pull,
                )
                for chunk in stream:
                    if not isinstance(chunk, dict):
                        continue
                    if "error" in chunk or "errorDetail" in chunk:
                        raise EngineError(f"the build failed: {_stream_error(chunk)}")
                    if text := chunk.get("stream"):
                        progress(str(text))
                    aux = chunk.get("aux")
                    if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
                        image_id = aux["ID"]
        finally:
            if labelled:
                labelled.remove()
        if not image_id:
            with _engine_errors(f"cannot inspect {tag}, the image just built"):
                image_id = str(self.api.inspect_image(tag)["Id"])
        return BuildResult(image_id)

    def has_network(self, name: str) -> bool:
        """Whether the engine has a network called ``name`` (``bridge`` is missing on an
        engine started with ``--bridge=none``, where RUN steps need ``--network host``)."""
        import docker

        try:
            return any(n.get("Name") == name for n in self.api.networks(names=[name]))
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot list the engine's networks: {_short(exc)}") from None

    def tag(self, image: str, repository: str, tag: str) -> None:
        with _engine_errors(f"cannot tag {image} as {repository}:{tag}"):
            self.api.tag(image, repository, tag, force=True)

    def untag(self, name: str) -> None:
        """Remove one name of an image (the image stays while another name has it)."""
        with contextlib.suppress(EngineError), _engine_errors(f"cannot untag {name}"):
            self.api.remove_image(name, noprune=True)

    def push(
        self,
        repository: str,
        tag: str,
        auth_config: Mapping[str, str] | None,
        progress: Progress = stderr_progress,
    ) -> str:
        """Push ``repository:tag``; return the digest the registry stored.

        Every stream line is checked: the SDK reports a failed push as a line with
        ``errorDetail`` and no exception. The digest comes from the ``aux`` line (the
        classic image store) or, where the engine sends none (Engine 26 with the
        containerd image store), from its ``TAG: digest: sha256:... size: N`` status line.
        """
        digest = ""
        last_status: dict[str, str] = {}
        with _engine_errors(f"the push of {repository}:{tag} failed"):
            stream: Iterable[Any] = self.api.push(
                repository,
                tag=tag,
                stream=True,
                decode=True,
                auth_config=dict(auth_config) if auth_config else None,
            )
            for line in stream:
                if not isinstance(line, dict):
                    continue
                if "error" in line or "errorDetail" in line:
                    message = _stream_error(line)
                    # A registry's "this tag is immutable" answer is recognised by the
                    # registry layer (tagger.registry.immutable), where build-push reads it.
                    raise EngineError(f"the push of {repository}:{tag} failed: {message}")
                aux = line.get("aux")
                if isinstance(aux, dict) and isinstance(aux.get("Digest"), str):
                    digest = aux["Digest"]
                status, layer = str(line.get("status", "")), str(line.get("id", ""))
                if not digest:
                    digest = status_digest(status, tag)
                # One line per layer state (Preparing, Pushing, Pushed...), not per tick.
                if status and last_status.get(layer) != status:
                    last_status[layer] = status
                    progress(f"{layer}: {status}" if layer else status)
        if not digest:
            raise EngineError(f"the push of {repository}:{tag} reported no digest")
        return digest

    # --- images: inspect, save and load (analyze and squash read and write whole images) ---

    def inspect_image(self, image: str) -> dict[str, Any]:
        """The engine's ``docker image inspect`` document for ``image`` (a name or ID).

        A name the engine does not know is bad input (exit 2), not an engine failure.
        """
        with _engine_errors(f"cannot inspect {image}", missing=image):
            doc = self.api.inspect_image(image)
        return dict(doc)

    def images(self) -> list[dict[str, Any]]:
        """Every tagged or dangling top-level image the engine has (``docker images``)."""
        with _engine_errors("cannot list the engine's images"):
            return [dict(image) for image in self.api.images()]

    def save(self, image: str, dest: BinaryIO, chunk_size: int = 1 << 20) -> None:
        """Write ``docker save IMAGE`` (a tar) to ``dest``, streaming."""
        self.inspect_image(image)  # a clear exit 2 for a missing image, before streaming
        with _engine_errors(f"cannot save {image} from the engine", missing=image):
            for chunk in self.api.get_image(image, chunk_size=chunk_size):
                dest.write(chunk)

    @contextlib.contextmanager
    def save_stream(self, image: str) -> Iterator[PendingSave | _SocketSave]:
        """``docker save IMAGE`` asked for at once: dockerd 20.10 exports the whole image
        before it sends a byte (0.7 s of the 0.8 s a 150 MB save takes here,
        benchmarks/README.md), which the caller spends on its own questions. ``stream()``
        on what this yields waits for the answer and reads it.

        With ``DOCKER_HOST=unix://...`` the request is written straight to the socket,
        before the docker SDK is even imported (~80 ms with its first request); else it
        goes through the SDK, in a thread."""
        pending: PendingSave | _SocketSave | None = _SocketSave.ask(image, self._env, self._timeout)
        if pending is None:
            pending = self._ask_sdk(image)
        try:
            yield pending
        finally:
            pending.close()

    def _ask_sdk(self, image: str) -> PendingSave:
        import threading

        api = self.api  # connected (and the SDK imported) in the caller's thread
        pending = PendingSave(image)

        def ask() -> None:
            try:
                with _engine_errors(f"cannot save {image} from the engine", missing=image):
                    pending.chunks = api.get_image(image, chunk_size=1 << 20)
                    # The status is checked, and the engine's export waited for, here.
                    pending.first = next(pending.chunks, b"")
            except BaseException as exc:  # handed to the caller's thread
                pending.error = exc

        pending.thread = threading.Thread(target=ask, name="imgtag-save", daemon=True)
        pending.thread.start()
        return pending

    def load(self, archive: BinaryIO) -> list[str]:
        """``docker load`` the tar in ``archive``; return what the engine reported loading
        (``Loaded image: NAME`` / ``Loaded image ID: ID`` lines' values).

        The SDK reports a failed load as a stream line with ``errorDetail``, like push.
        """
        loaded: list[str] = []
        with _engine_errors("the engine could not load the image"):
            for line in self.api.load_image(archive, quiet=True):
                if not isinstance(line, dict):
                    continue
                if "error" in line or "errorDetail" in line:
                    raise EngineError(f"the engine could not load the image: {_stream_error(line)}")
                text = str(line.get("stream", "")).strip()
                for prefix in ("Loaded image ID: ", "Loaded image: "):
                    if text.startswith(prefix):
                        loaded.append(text[len(prefix) :])
        return loaded

    # --- containers: imgtag check runs the image ----------------------------------------

    def create_container(
        self,
        image: str,
        *,
        command: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        network_mode: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Create (not start) a container of ``image``; return its ID. ``None`` keeps the
        image's value (command, entrypoint, user) or the engine's (network)."""
        host_config = self.api.create_host_config(network_mode=network_mode)
        with _engine_errors(f"cannot create a container of {image}", missing=image):
            created = self.api.create_container(
                image,
                command=list(command) if command is not None else None,
                entrypoint=list(entrypoint) if entrypoint is not None else None,
                environment=[f"{k}={v}" for k, v in (env or {}).items()] or None,
                user=user,
                labels=dict(labels or {}),
                host_config=host_config,
                # The docker CLI's config.json proxies must not change what a test sees.
                use_config_proxy=False,
            )
        return str(created["Id"])

    def start_container(self, container: str) -> None:
        """Start a created container. A command the image cannot run (no such file, not
        executable) is the image's failure, reported by the caller: :class:`EngineError`."""
        with _engine_errors("the container did not start"):
            self.api.start(container)

    def container_state(self, container: str) -> dict[str, Any]:
        """The container's ``State`` (``Running``, ``ExitCode``, ``Error``...)."""
        with _engine_errors(f"cannot inspect the container {container[:12]}"):
            return dict(self.api.inspect_container(container).get("State") or {})

    def stop_container(self, container: str, timeout: float) -> None:
        """``docker stop -t TIMEOUT``: the image's stop signal, then SIGKILL after
        ``timeout`` seconds; returns when the container has exited."""
        with _engine_errors(f"cannot stop the container {container[:12]}"):
            self.api.stop(container, timeout=max(0, math.ceil(timeout)))

    def wait_container(self, container: str) -> int:
        """Wait for the container to exit; its exit status."""
        with _engine_errors(f"cannot wait for the container {container[:12]}"):
            status = self.api.wait(container)
        return int(status.get("StatusCode", -1)) if isinstance(status, dict) else int(status)

    def container_logs(self, container: str) -> tuple[str, str]:
        """The container's stdout and stderr, each decoded as UTF-8 (errors replaced)."""
        with _engine_errors(f"cannot read the logs of the container {container[:12]}"):
            out = self.api.logs(container, stdout=True, stderr=False)
            err = self.api.logs(container, stdout=False, stderr=True)
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def container_archive(self, container: str, path: str) -> bytes | None:
        """``docker cp CONTAINER:PATH -``: the tar the engine makes of ``path`` (a symlink
        as itself), or ``None`` when the path does not exist in the container."""
        import docker

        with _engine_errors(f"cannot read {path} from the container {container[:12]}"):
            try:
                stream, _stat = self.api.get_archive(container, path)
                return b"".join(stream)
            except docker.errors.NotFound:
                return None

    def commit_container(self, container: str) -> str:
        """``docker commit``: a new image of the container's file system; its ID."""
        with _engine_errors(f"cannot commit the container {container[:12]}"):
            return str(self.api.commit(container)["Id"])

    def remove_container(self, container: str) -> None:
        """Remove a container, running or not, with its anonymous volumes. Never raises:
        it runs while a run is being torn down."""
        with contextlib.suppress(Exception):
            self.api.remove_container(container, force=True, v=True)

    def containers_labelled(self, label: str) -> list[str]:
        """The IDs of every container, running or not, that carries ``label`` (``k=v``)."""
        with _engine_errors("cannot list the engine's containers"):
            return [str(c["Id"]) for c in self.api.containers(all=True, filters={"label": label})]

    def remove_image(self, image: str) -> None:
        """Remove an image this run made (a committed set-up step). Never raises."""
        with contextlib.suppress(Exception):
            self.api.remove_image(image, force=True, noprune=False)


@contextlib.contextmanager
def _streamed_context(path: str, dockerfile: str | None) -> Iterator[tuple[Iterator[bytes], Any]]:
    """The build context of ``path`` as the SDK makes it (its ``.dockerignore`` reading,
    its ``process_dockerfile``, its ``utils.tar``), but streamed to the engine as it is
    made instead of written to a temporary file first and sent after: the SDK's tar of a
    64 MB context took ~0.4 s before the first byte went out (benchmarks/README.md).
    Yields the request body and the ``dockerfile`` parameter the SDK would send."""
    import queue
    import threading

    from docker import utils
    from docker.api.build import process_dockerfile

    exclude = None
    ignore = os.path.join(path, ".dockerignore")
    if os.path.exists(ignore):
        with open(ignore) as fh:
            lines = [line.strip() for line in fh.read().splitlines()]
        exclude = [line for line in lines if line and line[0] != "#"]
    processed = process_dockerfile(dockerfile, path)
    pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
    stop = threading.Event()

    def put(item: bytes | BaseException | None) -> None:
        while not stop.is_set():
            try:
                pieces.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        if not isinstance(item, BaseException):
            raise EngineError("the build ended before its context was sent")  # stops the tar

    class Pipe:
        """The file ``utils.tar`` writes to: 1 MiB pieces handed to the request."""

        def __init__(self) -> None:
            self.buffer = bytearray()
            self.written = 0

        def write(self, data: bytes) -> int:
            self.buffer += data
            self.written += len(data)
            if len(self.buffer) >= 1 << 20:
                put(bytes(self.buffer))
                self.buffer.clear()
            return len(data)

        def tell(self) -> int:
            return self.written

        def seek(self, offset: int, whence: int = 0) -> int:
            return self.written  # utils.tar rewinds its file when done: nothing to do

    def produce() -> None:
        pipe = Pipe()
        try:
            utils.tar(path, exclude=exclude, dockerfile=processed, fileobj=pipe)
            put(bytes(pipe.buffer))
            put(None)
        except BaseException as exc:  # handed to the request, which raises it
            put(exc)

    def body() -> Iterator[bytes]:
        while (item := pieces.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    worker = threading.Thread(target=produce, name="imgtag-context", daemon=True)
    worker.start()
    try:
        yield body(), processed
    finally:
        stop.set()
        worker.join()


class _SocketSave(io.RawIOBase):
    """``GET /images/NAME/get`` written to the engine's unix socket as the first thing a
    command does; the answer is parsed (``http.client``, imported only then) when
    :meth:`stream` is called. Read errors are :class:`EngineError`."""

    def __init__(self, image: str, sock: Any) -> None:
        self.image = image
        self._sock = sock
        self._response: Any = None

    @classmethod
    def ask(cls, image: str, env: Mapping[str, str], timeout: float) -> _SocketSave | None:
        """The request sent, or ``None`` where it cannot be (no unix ``DOCKER_HOST``, or
        the socket refuses): the SDK then asks, and says what is wrong."""
        import socket
        from urllib.parse import quote

        host = env.get("DOCKER_HOST", "")
        if not host.startswith("unix://"):
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(host.removeprefix("unix://"))
            path = "/images/" + quote(image, safe="/:") + "/get"
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode("ascii"))
        except (OSError, UnicodeEncodeError):
            sock.close()
            return None
        return cls(image, sock)

    def stream(self) -> BinaryIO:
        import http.client
        import json

        doing = f"cannot save {self.image} from the engine"
        response = http.client.HTTPResponse(self._sock, method="GET")
        try:
            response.begin()
            if response.status != 200:
                body = response.read(1 << 16)
        except (OSError, http.client.HTTPException) as exc:
            raise EngineError(f"{doing}: {type(exc).__name__}: {exc}") from None
        if response.status != 200:
            try:
                message = str(json.loads(body).get("message", ""))
            except (ValueError, AttributeError):
                message = body.decode("utf-8", "replace")[:300]
            if response.status == 404:
                raise ImageNotFoundError(
                    f"the Docker engine has no image {self.image!r}: check the name, or build "
                    "or pull it first"
                )
            raise EngineError(f"{doing}: {response.status} {redact(message)}")
        self._response = response
        return self  # type: ignore[return-value]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        import http.client

        try:
            return int(self._response.readinto(buffer))
        except (OSError, http.client.HTTPException) as exc:
            raise EngineError(
                f"cannot save {self.image} from the engine: the stream broke off "
                f"({type(exc).__name__})"
            ) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._response is not None:
                self._response.close()
            self._sock.close()
        super().close()


class PendingSave(io.RawIOBase):
    """The answer to a ``docker save`` sent by :meth:`Engine.save_stream`: a readable
    stream of the archive once :meth:`stream` has waited for it. Read errors (the engine
    going away mid-stream) are :class:`EngineError`."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.thread: Any = None
        self.chunks: Any = None
        self.error: BaseException | None = None
        self.first = b""
        self._chunk = memoryview(b"")

    def stream(self) -> BinaryIO:
        self.thread.join()
        if self.error is not None:
            raise self.error
        self._chunk = memoryview(self.first)
        return self  # type: ignore[return-value]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._chunk:
            with _engine_errors(f"cannot save {self.image} from the engine"):
                chunk = next(self.chunks, b"")
            self._chunk = memoryview(chunk)
        n = min(len(buffer), len(self._chunk))
        memoryview(buffer).cast("B")[:n] = self._chunk[:n]
        self._chunk = self._chunk[n:]
        return n

    def close(self) -> None:
        if self.thread is not None:
            self.thread.join()
        close = getattr(self.chunks, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()
        super().close()


@contextlib.contextmanager
def _engine_errors(
    doing: str, *, missing: str | None = None, also: tuple[type[Exception], ...] = ()
) -> Iterator[None]:
    """Run one engine call: what the docker SDK raises (``APIError`` and the rest of
    ``DockerException``), and what the HTTP stack under it raises when the engine goes
    away or stalls (requests' errors on a call, urllib3's while a stream is read), becomes
    an :class:`EngineError` starting with ``doing``. With ``missing``, an engine that does
    not know that image is the user's mistake instead (:class:`ImageNotFoundError`).
    ``also`` names more exception types that mean the call failed (a build's context that
    cannot be read)."""
    import docker
    import requests
    import urllib3

    try:
        yield
    except docker.errors.ImageNotFound as exc:
        if missing is None:
            raise EngineError(f"{doing}: {_short(exc)}") from None
        raise ImageNotFoundError(
            f"the Docker engine has no image {missing!r}: check the name, or build or pull it first"
        ) from None
    except (
        docker.errors.DockerException,
        requests.exceptions.RequestException,
        urllib3.exceptions.HTTPError,
        *also,
    ) as exc:
        raise EngineError(f"{doing}: {_short(exc)}") from None


@dataclass(frozen=True, slots=True)
class _TempDockerfile:
    path: str

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def label_instruction(labels: Mapping[str, str]) -> str | None:
    """One ``LABEL`` instruction for all labels, or ``None`` if a value cannot be written
    safely (a newline). ``$`` is escaped: LABEL expands variables.

    >>> print(label_instruction({"a.b": 'x "y" $HOME'}))
    LABEL "a.b"="x \\"y\\" \\$HOME"
    """
    parts = []
    for key, value in labels.items():
        if "\n" in key or "\n" in value or "\r" in key or "\r" in value:
            return None
        parts.append(f"{_dockerfile_quote(key)}={_dockerfile_quote(value)}")
    return "LABEL " + " ".join(parts) if parts else None


def _dockerfile_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def dockerfile_with_labels(
    context: str, dockerfile: str | None, target: str | None, labels: Mapping[str, str]
) -> _TempDockerfile | None:
    """The Dockerfile plus one ``LABEL`` line, in a temporary file outside the context.

    The classic builder turns the API's ``labels`` into one build step per label, each a
    container created, committed and removed (moby's ``buildLabelOptions``), where one
    LABEL line is one step whatever the number of labels. Falls back (``None``) where
    appending is not obviously right: a ``--target`` stage (the label belongs to it, not
    to the last stage), a file ending in a line continuation, an unreadable file.
    """
    instruction = label_instruction(labels)
    if instruction is None or target:
        return None
    path = dockerfile or os.path.join(context, "Dockerfile")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return None
    last = text.rstrip().splitlines()[-1] if text.strip() else ""
    escape = "`" if re.search(r"(?im)^#\s*escape\s*=\s*`", text) else "\\"
    if not last or last.endswith(escape) or last.lstrip().startswith("#"):
        return None
    fd, temp = tempfile.mkstemp(prefix="imgtag-", suffix=".Dockerfile")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text.rstrip("\n") + "\n" + instruction + "\n")
    return _TempDockerfile(temp)


def _context_kwargs() -> tuple[dict[str, Any], str]:
    """Connection arguments of the current docker context (``docker context use``)."""
    from docker.context import ContextAPI

    ctx = ContextAPI.get_current_context()
    host = getattr(ctx, "Host", None) or "unix:///var/run/docker.sock"
    kwargs: dict[str, Any] = {"base_url": host}
    tls = getattr(ctx, "TLSConfig", None)
    if tls:
        kwargs["tls"] = tls
    return kwargs, host


#: The status line a push ends with, on every engine: ``TAG: digest: sha256:HEX size: N``.
#: With the containerd image store (Engine 25 and later, Docker 29's default) it is the
#: only place the digest appears: moby's containerd push sends no ``aux`` Digest.
_PUSHED_DIGEST = re.compile(r"^(?P<tag>\S+): digest: (?P<digest>sha256:[0-9a-f]{64}) size: \d+$")


def status_digest(status: str, tag: str) -> str:
    """The digest in a push's final status line for ``tag``, else ``""``. Pure.

    >>> status_digest("1.0.0-1: digest: sha256:" + "ab" * 32 + " size: 751", "1.0.0-1")[:12]
    'sha256:ababa'
    >>> status_digest("other: digest: sha256:" + "ab" * 32 + " size: 751", "1.0.0-1")
    ''
    >>> status_digest("Pushed", "1.0.0-1")
    ''
    """
    match = _PUSHED_DIGEST.match(status.strip())
    if match is None or match.group("tag") != tag:
        return ""
    return match.group("digest")


def _stream_error(chunk: Mapping[str, Any]) -> str:
    detail = chunk.get("errorDetail")
    message = detail.get("message") if isinstance(detail, dict) else None
    return redact(str(message or chunk.get("error") or "unknown error").strip())[:500]


def _reason(exc: BaseException) -> str:
    # The SDK wraps a socket error in several layers; name the innermost cause plainly.
    inner: BaseException = exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    if isinstance(inner, FileNotFoundError):
        return "no such socket"
    if isinstance(inner, PermissionError):
        return "permission denied on the socket"
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    text = str(inner)
    if "Connection refused" in text:
        return "connection refused"
    if "No such file" in text:
        return "no such socket"
    return type(inner).__name__


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return redact(" ".join(text.split()))[:300]
