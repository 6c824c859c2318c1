"""``imgtag squash`` on real images in the test bed's engine.

The squashed image's file tree is compared with the original's independently of imgtag's
code: a container of each image is created and ``docker export``-ed (the engine flattens the
layers itself), and every member's name, type, size, mode, owner, link target, content hash
and mtime must match, except the few paths the engine makes for every container.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import testbed as tb
from clirun import run_cli
from tagger.engine import Engine
from tagger.errors import EngineError
from tagger.image.squash import squash_image

if TYPE_CHECKING:
    import docker

BB = "/bin/busybox"

# What the engine adds to every container (its init layer), and its mount points.
ENGINE_MADE = {".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab"}
ENGINE_DIRS = {"", "dev", "proc", "sys", "etc", "dev/pts", "dev/shm", "dev/console"}

BASE_SCRIPT = " && ".join(
    [
        f"{BB} mkdir -p /etc/keep /opt/gone/sub /opt/opq /opt/keepdir /var/base",
        "echo base > /etc/keep/a",
        "echo gone > /opt/gone/sub/x",
        "echo old > /opt/opq/old",
        "echo delme > /etc/delme",
        "echo linked > /var/base/t",
        f"{BB} ln /var/base/t /var/base/t2",
        "echo k > /opt/keepdir/k",
    ]
)

# Each RUN is one layer; together they cover what the squash must get right.
APP_LAYERS = [
    # hard links, symlinks, modes, owners, an empty directory, a fifo
    " && ".join(
        [
            "echo one > /one",
            f"{BB} ln /one /one-link",
            f"{BB} ln -s /one /one-sym",
            f"{BB} ln -s dangling /dangling-sym",
            f"{BB} mkdir -m 0700 /priv",
            "echo s > /priv/secret",
            f"{BB} chmod 0600 /priv/secret",
            "echo x > /suid",
            f"{BB} chown 1234:5678 /suid",  # before chmod: chown clears the setuid bit
            f"{BB} chmod 4755 /suid",
            f"{BB} mkdir /empty",
            f"{BB} mkfifo /fifo",
            f"{BB} mknod /chardev c 1 3",
            "echo t > /tmpfile",
            f"{BB} ln /tmpfile /tmpfile-link",
            f"{BB} mkdir /d2f",
            "echo in > /d2f/in",
        ]
    ),
    # deletions of base paths, an opaque directory, a directory replaced by a file,
    # a hard link's target deleted
    " && ".join(
        [
            f"{BB} rm -rf /opt/gone /etc/delme",
            f"{BB} rm -rf /opt/opq",
            f"{BB} mkdir /opt/opq",
            "echo new > /opt/opq/new",
            f"{BB} rm -rf /d2f",
            "echo now-a-file > /d2f",
            f"{BB} rm /tmpfile",
        ]
    ),
    # a link target overwritten, squashed-only content deleted, a base file changed
    " && ".join(
        [
            f"{BB} rm /one",
            "echo two > /one",
            "echo f > /f2d",
            f"{BB} dd if=/dev/zero of=/big bs=1024 count=300",
            f"{BB} rm /big",
            "echo more >> /etc/keep/a",
        ]
    ),
    # a file replaced by a directory, a link across squashed layers, a base file deleted
    " && ".join(
        [
            f"{BB} rm /f2d",
            f"{BB} mkdir /f2d",
            "echo inner > /f2d/inner",
            f"{BB} ln /one /one2",
            f"{BB} rm /var/base/t",
        ]
    ),
]

APP_CMD = [BB, "sh", "-c", "cat /one /one-link /one2 /f2d/inner /d2f; ls /opt/opq; ls /opt"]
APP_OUTPUT = "two\none\ntwo\ninner\nnow-a-file\nnew\nkeepdir\nopq\n"


def _build(client: docker.DockerClient, tag: str, dockerfile: str) -> str:
    with tempfile.TemporaryDirectory(prefix="itb-sq-") as ctx:
        context = Path(ctx)
        shutil.copy2(tb.BUSYBOX, context / "busybox")
        (context / "Dockerfile").write_text(dockerfile)
        image, _ = client.images.build(path=str(context), tag=tag, rm=True, forcerm=True)
    return str(image.id)


def _run(script: str) -> str:
    return "RUN " + json.dumps([BB, "sh", "-c", script])


@pytest.fixture(scope="module")
def images(docker_client: docker.DockerClient) -> dict[str, str]:
    """``sqt/base:1`` (2 layers) and ``sqt/app:1`` (FROM it, 4 layers more, config set)."""
    base = _build(
        docker_client,
        "sqt/base:1",
        "FROM scratch\nCOPY busybox /bin/busybox\n" + _run(BASE_SCRIPT) + "\n",
    )
    app_file = "FROM sqt/base:1\nENV A=1 B=two\nWORKDIR /opt\nLABEL org.example.x=y\n"
    app_file += "".join(_run(script) + "\n" for script in APP_LAYERS)
    app_file += "EXPOSE 8080\nUSER 0:0\nCMD " + json.dumps(APP_CMD) + "\n"
    app = _build(docker_client, "sqt/app:1", app_file)
    return {"base": base, "app": app}


def _tree(client: docker.DockerClient, image: str) -> dict[str, tuple[Any, ...]]:
    """Every path of a container of ``image``, as ``docker export`` gives it."""
    container = client.containers.create(image)
    try:
        data = b"".join(container.export(chunk_size=1 << 20))
    finally:
        container.remove(force=True)
    tree: dict[str, tuple[Any, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar:
            name = info.name.removeprefix("./").rstrip("/")
            if name in ENGINE_MADE or name.startswith(("proc/", "sys/")):
                continue
            digest = ""
            if info.isreg():
                fh = tar.extractfile(info)
                assert fh is not None
                digest = hashlib.sha256(fh.read()).hexdigest()
            tree[name] = (
                info.type,
                info.size,
                oct(info.mode),
                info.uid,
                info.gid,
                info.linkname,
                digest,
                None if name in ENGINE_DIRS else int(info.mtime),
                (info.devmajor, info.devminor) if info.ischr() or info.isblk() else None,
                tuple(sorted(info.pax_headers.items())),
            )
    return tree


def _layers(client: docker.DockerClient, image: str) -> list[str]:
    return list(client.api.inspect_image(image)["RootFS"]["Layers"])


def _diff(a: dict[str, tuple[Any, ...]], b: dict[str, tuple[Any, ...]]) -> list[str]:
    problems = [f"only in original: {p}" for p in sorted(a.keys() - b.keys())]
    problems += [f"only in squashed: {p}" for p in sorted(b.keys() - a.keys())]
    problems += [f"{p}: {a[p]} != {b[p]}" for p in sorted(a.keys() & b.keys()) if a[p] != b[p]]
    return problems


@pytest.fixture
def engine_api(engine: tb.Engine) -> Engine:
    return Engine({"DOCKER_HOST": engine.host})


def test_squash_keeps_the_tree_config_and_base(
    docker_client: docker.DockerClient, images: dict[str, str], engine_api: Engine
) -> None:
    docker_client.api.tag(images["app"], "sqt/app", "tree")
    before = _tree(docker_client, images["app"])

    # The cases the layers were made for are really in the original's tree.
    def mode(path: str) -> int:
        return int(before[path][2], 8) & 0o7777

    assert mode("suid") == 0o4755 and before["suid"][3:5] == (1234, 5678)
    assert mode("priv") == 0o700 and mode("priv/secret") == 0o600
    assert before["fifo"][0] == tarfile.FIFOTYPE and before["empty"][0] == tarfile.DIRTYPE
    assert before["chardev"][0] == tarfile.CHRTYPE and before["chardev"][8] == (1, 3)
    assert "opt/gone" not in before and "etc/delme" not in before and "opt/opq/old" not in before
    assert before["f2d"][0] == tarfile.DIRTYPE and before["d2f"][0] == tarfile.REGTYPE
    assert "var/base/t" not in before and before["var/base/t2"][1] == len("linked\n")

    result = squash_image(engine_api, "sqt/app:tree")

    assert result.changed and result.tag == "sqt/app:tree"
    assert (result.base_layers, result.squashed_layers) == (2, 4)
    assert "sqt/base:1" in result.base_source  # found by the shared layer prefix
    assert result.id != images["app"]
    assert docker_client.api.inspect_image("sqt/app:tree")["Id"] == result.id
    new_layers = _layers(docker_client, result.id)
    assert new_layers[:2] == _layers(docker_client, images["base"])
    assert len(new_layers) == 3

    after = _tree(docker_client, result.id)
    assert _diff(before, after) == []

    old_cfg = docker_client.api.inspect_image(images["app"])["Config"]
    new_cfg = docker_client.api.inspect_image(result.id)["Config"]
    for key in ("Env", "Cmd", "WorkingDir", "Labels", "ExposedPorts", "User", "Entrypoint"):
        assert new_cfg.get(key) == old_cfg.get(key), key
    history = docker_client.api.history(result.id)
    assert history[0]["CreatedBy"] == "imgtag squash: merged 4 layers"
    assert len(history) == len(docker_client.api.history(images["app"])) + 1

    out = docker_client.containers.run(result.id, remove=True)
    assert out.decode() == APP_OUTPUT
    # /big (300 KiB, written and deleted) is not in the squashed layer.
    assert result.size_after < result.size_before


def test_squash_all_layers_and_top_n(
    docker_client: docker.DockerClient, images: dict[str, str], engine_api: Engine
) -> None:
    before = _tree(docker_client, images["app"])
    everything = squash_image(engine_api, images["app"], all_layers=True, tag="sqt/app:all")
    assert everything.tag == "sqt/app:all" and everything.base_layers == 0
    assert len(_layers(docker_client, "sqt/app:all")) == 1
    assert _diff(before, _tree(docker_client, "sqt/app:all")) == []

    top = squash_image(engine_api, images["app"], from_="2", tag="sqt/app:top2")
    assert (top.base_layers, top.squashed_layers) == (4, 2)
    assert _layers(docker_client, "sqt/app:top2")[:4] == _layers(docker_client, images["app"])[:4]
    assert _diff(before, _tree(docker_client, "sqt/app:top2")) == []
    # By ID and without --tag: no name is given, the original keeps its own.
    assert squash_image(engine_api, images["app"], from_="3").tag is None
    assert docker_client.api.inspect_image("sqt/app:1")["Id"] == images["app"]


def test_squash_cli_json_and_no_op(
    engine: tb.Engine, docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    env = {"DOCKER_HOST": engine.host}
    args = ["squash", images["app"], "--from", "sqt/base:1", "--tag", "sqt/app:cli"]
    res = run_cli([*args, "--format", "json"], env=env)
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["tag"] == "sqt/app:cli" and doc["squashed_layers"] == 4 and doc["base_layers"] == 2
    assert doc["id"] == docker_client.api.inspect_image("sqt/app:cli")["Id"]
    assert {"image", "size_before", "size_after"} <= doc.keys()
    assert "squashing 4 layers" in res.stderr  # progress on stderr, data alone on stdout

    text = run_cli(["squash", images["app"], "--from", "2", "--tag", "sqt/app:text"], env=env)
    assert text.code == 0, text.stderr
    assert text.stdout.startswith("sqt/app:text: squashed 2 layers into 1 above 4 base layers")

    again = run_cli(["squash", "sqt/app:cli"], env=env)  # one layer above sqt/base:1
    assert again.code == 0, again.stderr
    assert "nothing to squash" in again.stdout
    assert docker_client.api.inspect_image("sqt/app:cli")["Id"] == doc["id"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["squash", "sqt/no-such-image:1"], "has no image"),
        (["squash", "sqt/app:1", "--from", "sqt/app:1-missing"], "has no image"),
        (["squash", "sqt/base:1", "--from", "sqt/app:1"], "not a base image"),
        (["squash", "sqt/app:1", "--from", "99"], "more layers"),
        (["squash", "sqt/app:1", "--from", "2", "--all"], "exclude each other"),
        (["squash", "sqt/app:1", "--tag", "Bad Tag"], "not a valid"),
    ],
)
def test_squash_bad_input_is_exit_2(
    engine: tb.Engine, images: dict[str, str], args: list[str], message: str
) -> None:
    res = run_cli(args, env={"DOCKER_HOST": engine.host})
    assert res.code == 2, (res.stdout, res.stderr)
    assert message in res.stderr
    assert res.stderr.count("\n") == 1  # one sentence, no traceback


def test_temporary_files_and_the_thread_go_away_on_ctrl_c(
    images: dict[str, str], engine_api: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(archive: Any) -> list[str]:
        archive.read(1 << 16)  # the squashed layer is being produced
        raise KeyboardInterrupt

    monkeypatch.setattr(engine_api, "load", interrupted)
    with pytest.raises(KeyboardInterrupt):
        squash_image(engine_api, images["app"], from_="2", tag="sqt/app:int", workdir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "imgtag-squash-layer"]


def test_an_engine_that_wants_the_base_layers_gets_them(
    docker_client: docker.DockerClient,
    images: dict[str, str],
    engine_api: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_load = engine_api.load
    calls: list[int] = []

    def picky(archive: Any) -> list[str]:
        calls.append(len(archive))
        if len(calls) == 1:
            raise EngineError(
                "the engine could not load the image: open base-0/layer.tar: no such file"
            )
        return real_load(archive)

    monkeypatch.setattr(engine_api, "load", picky)
    result = squash_image(engine_api, images["app"], from_="sqt/base:1", tag="sqt/app:raw")
    assert len(calls) == 2 and calls[1] > calls[0]  # the second archive holds the base layers
    assert docker_client.api.inspect_image("sqt/app:raw")["Id"] == result.id
    assert _layers(docker_client, result.id)[:2] == _layers(docker_client, images["base"])


def test_a_tree_1500_levels_deep_is_squashed(
    engine: tb.Engine, docker_client: docker.DockerClient
) -> None:
    """A COPY of a directory tree 1,500 levels deep (3 KB of path: the engine applies it)
    and a layer over it, squashed through the command line: the planner's walks recursed
    once per level and exited 70 (RecursionError) before."""
    depth = 1_500
    deep = "tree/" + "d/" * depth
    # The build context as a tar made here: pathlib, os.makedirs and the docker SDK's own
    # context walk all recurse once per level.
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for level in range(depth + 1):
            info = tarfile.TarInfo("tree/" + "d/" * level)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in (
            (deep + "f", b"deep\n"),
            ("top", b"top\n"),
            ("Dockerfile", b'FROM scratch\nCOPY tree /tree\nCOPY top /top\nCMD ["/none"]\n'),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    image, _ = docker_client.images.build(
        fileobj=context, custom_context=True, tag="sqt/deep:1", rm=True
    )
    before = _tree(docker_client, str(image.id))
    assert before[deep + "f"][1] == len("deep\n")

    res = run_cli(
        ["squash", "sqt/deep:1", "--all", "--tag", "sqt/deep:squashed", "--format", "json"],
        env={"DOCKER_HOST": engine.host},
    )
    assert res.code == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert json.loads(res.stdout)["squashed_layers"] == 2
    assert len(_layers(docker_client, "sqt/deep:squashed")) == 1
    assert _diff(before, _tree(docker_client, "sqt/deep:squashed")) == []
