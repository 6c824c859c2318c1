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
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
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
        progress: Progress = stderr_progress,
    ) -> BuildResult:
        """Build ``context`` and tag the result ``tag``; stream the build log to ``progress``.

        ``network_mode``: the network of RUN steps (``--network``), the engine's default
        when ``None``."""
        image_id = ""
        labelled = dockerfile_with_labels(context, dockerfile, target, labels)
        try:
            with _engine_errors("the build failed", also=(OSError,)):
                stream = self.api.build(
                    path=context,
                    dockerfile=labelled.path if labelled else dockerfile,
                    tag=tag,
                    buildargs=dict(buildargs),
                    target=target,
                    labels=None if labelled else dict(labels),
                    rm=True,
                    forcerm=True,
                    decode=True,
                    network_mode=network_mode,
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
        ``errorDetail`` and no exception.
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
