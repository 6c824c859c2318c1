"""An engine that fails is exit 6 (a missing image exit 2), never an internal error (70).

No engine is needed: ``docker.APIClient`` is replaced by a fake client whose calls raise
what the SDK and the HTTP stack under it raise when the engine refuses, drops the
connection or stalls, either at once or in the middle of a stream.
"""

from __future__ import annotations

import io
import socket
import tarfile
import threading
from collections.abc import Iterator
from typing import Any

import docker
import pytest
import requests
import urllib3

from tagger.cli import main
from tagger.engine import Engine
from tagger.errors import EngineError, ExitCode, ImageNotFoundError

FAILURES = {
    "api error": docker.errors.APIError("500 Server Error: Internal Server Error"),
    "connection dropped": requests.exceptions.ConnectionError("Connection aborted"),
    "read timeout": requests.exceptions.ReadTimeout("Read timed out. (read timeout=600)"),
    "stream broken": urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead"),
}


class FailingAPI:
    """Stands in for ``docker.APIClient``: every call raises ``error``; the streaming ones
    (build, push, load, save) first yield one ordinary line, then raise."""

    def __init__(self, error: Exception, **kwargs: Any) -> None:
        self.error = error
        self.calls: list[str] = []

    def _raise(self, name: str) -> Any:
        self.calls.append(name)
        raise self.error

    def _stream(self, name: str, first: Any) -> Iterator[Any]:
        self.calls.append(name)
        yield first
        raise self.error

    def inspect_image(self, image: str) -> Any:
        return self._raise("inspect_image")

    def images(self) -> Any:
        return self._raise("images")

    def tag(self, *args: Any, **kwargs: Any) -> Any:
        return self._raise("tag")

    def remove_image(self, *args: Any, **kwargs: Any) -> Any:
        return self._raise("remove_image")

    def build(self, **kwargs: Any) -> Iterator[Any]:
        return self._stream("build", {"stream": "Step 1/1 : FROM scratch\n"})

    def push(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self._stream("push", {"status": "Preparing", "id": "abc"})

    def load_image(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self._stream("load_image", {"stream": "Loading layer\n"})

    def get_image(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self._stream("get_image", b"tar bytes")


class BuildsWithoutAnIdAPI(FailingAPI):
    """A build that ends without reporting the image ID, then an inspect that fails."""

    def build(self, **kwargs: Any) -> Iterator[Any]:
        self.calls.append("build")
        return iter([{"stream": "Successfully built\n"}])


class SavesAfterInspectAPI(FailingAPI):
    """An image that inspects fine; saving it fails."""

    def inspect_image(self, image: str) -> Any:
        self.calls.append("inspect_image")
        return {"Id": "sha256:" + "a" * 64}


def _fake_sdk(monkeypatch: pytest.MonkeyPatch, api: FailingAPI) -> None:
    monkeypatch.setattr(docker, "APIClient", lambda **kwargs: api)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/imgtag-test.sock")


def _engine(monkeypatch: pytest.MonkeyPatch, api: Any) -> Engine:
    _fake_sdk(monkeypatch, api)
    return Engine({"DOCKER_HOST": "unix:///nonexistent/imgtag-test.sock"})


@pytest.mark.parametrize("error", FAILURES.values(), ids=FAILURES.keys())
def test_every_engine_call_fails_as_an_engine_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, error: Exception
) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    api = FailingAPI(error)
    engine = _engine(monkeypatch, api)
    calls: dict[str, Any] = {
        "inspect_image": lambda: engine.inspect_image("app:1"),
        "images": engine.images,
        "tag": lambda: engine.tag("app:1", "registry/app", "1.0.0-1"),
        "build": lambda: engine.build(
            context=str(tmp_path),
            dockerfile=None,
            tag="app:build",
            buildargs={},
            target=None,
            labels={},
            progress=lambda line: None,
        ),
        "push": lambda: engine.push("registry/app", "1.0.0-1", None, progress=lambda line: None),
        "load_image": lambda: engine.load(io.BytesIO(b"tar")),
    }
    for name, call in calls.items():
        with pytest.raises(EngineError) as info:
            call()
        assert info.value.exit_code == ExitCode.ENGINE, name
        assert api.calls[-1] == name
    # Removing a name is best effort: a failure there is not worth stopping for.
    engine.untag("app:build")
    assert api.calls[-1] == "remove_image"


@pytest.mark.parametrize("error", FAILURES.values(), ids=FAILURES.keys())
def test_the_inspect_after_a_build_without_an_id_is_an_engine_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, error: Exception
) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    api = BuildsWithoutAnIdAPI(error)
    engine = _engine(monkeypatch, api)
    with pytest.raises(EngineError, match="cannot inspect app:build, the image just built"):
        engine.build(
            context=str(tmp_path),
            dockerfile=None,
            tag="app:build",
            buildargs={},
            target=None,
            labels={},
            progress=lambda line: None,
        )
    assert api.calls == ["build", "inspect_image"]


@pytest.mark.parametrize("error", FAILURES.values(), ids=FAILURES.keys())
def test_a_save_that_breaks_off_is_an_engine_error(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    api = SavesAfterInspectAPI(error)
    engine = _engine(monkeypatch, api)
    out = io.BytesIO()
    with pytest.raises(EngineError, match="cannot save app:1 from the engine"):
        engine.save("app:1", out)
    assert out.getvalue() == b"tar bytes"  # it did start: the failure is mid-stream


@pytest.mark.parametrize("error", FAILURES.values(), ids=FAILURES.keys())
@pytest.mark.parametrize(
    "command", [["analyze", "app:1"], ["squash", "app:1"]], ids=["analyze", "squash"]
)
def test_the_cli_exits_6_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    command: list[str],
) -> None:
    _fake_sdk(monkeypatch, FailingAPI(error))
    assert main(command) == ExitCode.ENGINE
    err = capsys.readouterr().err
    assert err.startswith("imgtag: error: cannot inspect app:1: ")
    assert err.count("\n") == 1  # one sentence, no traceback
    assert "internal error" not in err


def test_a_missing_image_is_exit_2_not_an_engine_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_sdk(monkeypatch, FailingAPI(docker.errors.ImageNotFound("No such image: app:1")))
    assert main(["analyze", "app:1"]) == ExitCode.USAGE
    assert "the Docker engine has no image 'app:1'" in capsys.readouterr().err
    with pytest.raises(ImageNotFoundError):
        Engine({"DOCKER_HOST": "unix:///nonexistent/imgtag-test.sock"}).inspect_image("app:1")


class PushStreamAPI:
    """A push that succeeds with the lines an engine sends: Engine 26 with the containerd
    image store sends no ``aux`` Digest, only the final status line."""

    def __init__(self, lines: list[dict[str, Any]], **kwargs: Any) -> None:
        self.lines = lines

    def push(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        yield from self.lines


DIGEST = "sha256:" + "8493d729" * 8


@pytest.mark.parametrize(
    "lines",
    [
        [  # Engine 26, containerd image store: the status line only
            {"status": "The push refers to repository [r/app]"},
            {"status": "Pushed", "progressDetail": {}, "id": "b34eb79cf803"},
            {"status": f"1.0.0-1: digest: {DIGEST} size: 751"},
        ],
        [  # Engine 20.10, classic store: the status line and the aux line
            {"status": f"1.0.0-1: digest: {DIGEST} size: 751"},
            {"progressDetail": {}, "aux": {"Tag": "1.0.0-1", "Digest": DIGEST, "Size": 751}},
        ],
    ],
    ids=["containerd-store", "classic-store"],
)
def test_push_returns_the_digest_on_both_image_stores(
    monkeypatch: pytest.MonkeyPatch, lines: list[dict[str, Any]]
) -> None:
    engine = _engine(monkeypatch, PushStreamAPI(lines))
    assert engine.push("r/app", "1.0.0-1", None, progress=lambda line: None) == DIGEST


def test_a_push_whose_digest_names_another_tag_reported_no_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [{"status": f"other: digest: {DIGEST} size: 751"}]
    engine = _engine(monkeypatch, PushStreamAPI(lines))
    with pytest.raises(EngineError, match="reported no digest"):
        engine.push("r/app", "1.0.0-1", None, progress=lambda line: None)


def _answer_once(path: str, answer: bytes) -> threading.Thread:
    """A unix socket at ``path`` that answers one request with ``answer``, then hangs up."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn, server:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            assert request.startswith(b"GET /images/app:1/get HTTP/1.1\r\n")
            conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def _tar_head(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf()


@pytest.mark.parametrize(
    ("answer", "code", "words"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n600\r\n"
            + _tar_head("l/layer.tar", 1 << 20)
            + b"\0" * 1024
            + b"\r\n",
            ExitCode.ENGINE,
            "cannot save app:1 from the engine: the stream broke off",
            id="broken-off",
        ),
        pytest.param(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 23\r\n\r\n"
            b'{"message":"disk full"}',
            ExitCode.ENGINE,
            "cannot save app:1 from the engine: 500 disk full",
            id="500",
        ),
        pytest.param(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 35\r\n\r\n"
            b'{"message":"No such image: app:1"}\n',
            ExitCode.USAGE,
            "the Docker engine has no image 'app:1'",
            id="404",
        ),
    ],
)
def test_a_save_asked_on_the_socket_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
    answer: bytes,
    code: ExitCode,
    words: str,
) -> None:
    """With a unix DOCKER_HOST the save is written straight to the socket (the inspection
    goes through the SDK, faked here): whatever the socket answers is one line."""
    path = str(tmp_path / "engine.sock")
    server = _answer_once(path, answer)
    monkeypatch.setattr(docker, "APIClient", lambda **kwargs: SavesAfterInspectAPI(OSError()))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    assert main(["analyze", "app:1", "--base", "0"]) == code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("imgtag: error: ")]
    assert len(errors) == 1 and words in errors[0], err
    assert "Traceback" not in err
    server.join(5)


def test_the_streamed_build_context_is_the_sdks(tmp_path: Any) -> None:
    """The context streamed to the engine holds what the SDK's own temporary tar holds:
    .dockerignore applied, a Dockerfile outside the context sent as an extra member."""
    from docker import utils
    from docker.api.build import process_dockerfile

    from tagger.engine import _streamed_context

    ctx = tmp_path / "ctx"
    (ctx / "keep" / "deep").mkdir(parents=True)
    (ctx / "keep" / "deep" / "a.txt").write_bytes(b"a" * 3_000_000)  # several pieces
    (ctx / "secret.env").write_text("TOKEN=x\n")
    (ctx / ".dockerignore").write_text("# comment\n*.env\n\n")
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    outside = tmp_path / "Dockerfile.labelled"
    outside.write_text("FROM scratch\nLABEL a=b\n")

    def members(data: bytes) -> dict[str, bytes]:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return {
                m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                for m in tar
            }

    with _streamed_context(str(ctx), None) as (body, param):
        streamed = members(b"".join(body))
    sdk = utils.tar(str(ctx), exclude=["*.env"], dockerfile=process_dockerfile(None, str(ctx)))
    assert streamed == members(sdk.read())
    assert "secret.env" not in streamed and len(streamed["keep/deep/a.txt"]) == 3_000_000
    assert param == (None, None)

    with _streamed_context(str(ctx), str(outside)) as (body, param):
        streamed = members(b"".join(body))
    name, contents = param
    assert name.startswith(".dockerfile.") and streamed[name] == outside.read_bytes()
    assert contents == outside.read_text()
