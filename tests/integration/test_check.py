"""``imgtag check`` on real images built ``FROM scratch`` in the bed's engine: the verdict
of every CHK check, the JSON and JUnit reports, exit codes, and that every container it
started is gone afterwards, also when the imgtag process gets SIGTERM or SIGINT.

The images are Debian's static busybox, with Debian's ``tini-static`` where an init is
wanted. CHK001's grace period is 1 s here (``--stop-timeout 1``), so the images that ignore
SIGTERM cost a second each, never the default ten.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import testbed as tb
from clirun import CliResult, run_cli
from tagger.errors import ExitCode

if TYPE_CHECKING:
    import docker

ROOT = Path(__file__).resolve().parents[2]
TINI = Path("/usr/bin/tini-static")  # Debian's tini: a static init for FROM scratch
LABEL = "io.imgtag.check"
SLEEP = '["/bin/busybox", "sleep", "1000"]'


def _run(script: str) -> str:
    return "RUN " + json.dumps(["/bin/busybox", "sh", "-c", script]) + "\n"


# name -> the Dockerfile after "FROM scratch" + busybox at /bin/busybox + tini at /tini.
IMAGES: dict[str, str] = {
    # busybox sleep as PID 1 ignores SIGTERM (the kernel drops it: no handler in PID 1).
    "sleep": f"USER 1001\nCMD {SLEEP}\n",
    # The same under tini, which forwards SIGTERM to sleep and exits with its status.
    "tini": f'USER 1001\nENTRYPOINT ["/tini", "--"]\nCMD {SLEEP}\n',
    # Shell form: /bin/sh -c "..." is PID 1.
    "shell": _run("/bin/busybox ln -s /bin/busybox /bin/sh")
    + "USER 1001\nCMD /bin/busybox sleep 1000\n",
    # No USER: root; its low port is not CHK004's business then.
    "root": f'EXPOSE 80\nENTRYPOINT ["/tini", "--"]\nCMD {SLEEP}\n',
    "high-port": f'USER 1001\nEXPOSE 8080/tcp\nENTRYPOINT ["/tini", "--"]\nCMD {SLEEP}\n',
    "low-port": f'USER 1001\nEXPOSE 80/tcp\nENTRYPOINT ["/tini", "--"]\nCMD {SLEEP}\n',
    # WORKDIR makes /app as root:root 0755: the arbitrary uid in group 0 cannot write.
    "workdir-root": f'WORKDIR /app\nUSER 1001\nENTRYPOINT ["/tini", "--"]\nCMD {SLEEP}\n',
    # The OpenShift fix: group 0 owns it and has the owner's rights.
    "workdir-fixed": "WORKDIR /app\n"
    + _run("chgrp -R 0 /app && chmod -R g=u /app")
    + f'USER 1001\nENTRYPOINT ["/tini", "--"]\nCMD {SLEEP}\n',
    # WORKDIR / is where every container starts: nothing of the image's own to write-check.
    "workdir-slash": f'WORKDIR /\nUSER 1001\nENTRYPOINT ["/tini", "--"]\nCMD {SLEEP}\n',
    # No ENTRYPOINT, no CMD: the engine will not even create a container of it.
    "no-cmd": "USER 1001\n",
    # A VOLUME that is not group-writable, and a CMD that exits at once under any uid.
    "volume-root": _run("mkdir /data")
    + f'VOLUME /data\nUSER 1001\nENTRYPOINT ["/tini", "--"]\nCMD {SLEEP}\n',
}
# No shell at all: busybox installed only as /bin/sleep (it picks the applet by its name).
NO_SHELL = (
    "FROM scratch\nCOPY tini /tini\nCOPY busybox /bin/sleep\nUSER 1001\n"
    'ENTRYPOINT ["/tini", "--"]\nCMD ["/bin/sleep", "1000"]\n'
)


def build(client: docker.DockerClient, tag: str, dockerfile: str) -> str:
    with tempfile.TemporaryDirectory(prefix="itb-chk-") as ctx:
        shutil.copy2(tb.BUSYBOX, Path(ctx, "busybox"))
        shutil.copy2(TINI, Path(ctx, "tini"))
        Path(ctx, "Dockerfile").write_text(dockerfile)
        image, _ = client.images.build(path=ctx, tag=tag, rm=True, forcerm=True)
    return str(image.id)


@pytest.fixture(scope="module")
def images(docker_client: docker.DockerClient) -> dict[str, str]:
    """Every test image, by name, as ``check-it/NAME:1``."""
    base = "FROM scratch\nCOPY busybox /bin/busybox\nCOPY tini /tini\n"
    out = {}
    for name, body in IMAGES.items():
        build(docker_client, f"check-it/{name}:1", base + body)
        out[name] = f"check-it/{name}:1"
    build(docker_client, "check-it/no-shell:1", NO_SHELL)
    out["no-shell"] = "check-it/no-shell:1"
    return out


def leftovers(client: docker.DockerClient) -> list[str]:
    # The low-level list: the high-level one inspects each container, and one that imgtag
    # removes meanwhile is a 404.
    return [str(c["Id"]) for c in client.api.containers(all=True, filters={"label": LABEL})]


def check(engine: tb.Engine, *args: str, env: Mapping[str, str] | None = None) -> CliResult:
    return run_cli(["check", *args], env={"DOCKER_HOST": engine.host, **(env or {})})


def verdicts(result: CliResult) -> dict[str, str]:
    doc = json.loads(result.stdout)
    return {c["id"]: c["verdict"] for c in doc["checks"]}


def details(result: CliResult, check_id: str) -> str:
    doc = json.loads(result.stdout)
    return " ".join(next(c for c in doc["checks"] if c["id"] == check_id)["details"])


@pytest.fixture(autouse=True)
def no_leftovers(docker_client: docker.DockerClient) -> Iterator[None]:
    yield
    assert leftovers(docker_client) == [], "imgtag check left containers behind"


def test_sleep_as_pid1_ignores_sigterm_and_is_killed_after_the_grace_period(
    engine: tb.Engine, images: dict[str, str]
) -> None:
    result = check(engine, images["sleep"], "--format", "json", "--stop-timeout", "1")
    assert result.code == ExitCode.POLICY, result.stderr
    assert verdicts(result) == {
        "CHK001": "fail",
        "CHK002": "pass",
        "CHK003": "pass",
        "CHK004": "pass",
        "CHK005": "pass",
    }
    assert "ignored SIGTERM" in details(result, "CHK001")
    assert "exit status 137" in details(result, "CHK001")
    doc = json.loads(result.stdout)
    chk001 = next(c for c in doc["checks"] if c["id"] == "CHK001")
    # The engine waited the grace period before SIGKILL: the time is the grace period.
    assert chk001["seconds"] >= 1.0
    assert chk001["help"].endswith("docs/check/CHK001.md")
    assert "CHK001" in result.stderr and "1 check(s) failed" in result.stderr


def test_the_same_under_tini_stops_on_sigterm(engine: tb.Engine, images: dict[str, str]) -> None:
    result = check(engine, images["tini"], "--format", "json", "--stop-timeout", "1")
    assert result.code == 0, result.stderr
    assert set(verdicts(result).values()) == {"pass"}
    # tini passed SIGTERM on; sleep died of it, and tini exits with 128 + 15.
    assert "stopped on SIGTERM" in details(result, "CHK001")
    assert "exit status 143" in details(result, "CHK001")


def test_shell_form_cmd_fails_chk005(engine: tb.Engine, images: dict[str, str]) -> None:
    result = check(engine, images["shell"], "--format", "json", "--stop-timeout", "1")
    assert result.code == ExitCode.POLICY
    v = verdicts(result)
    assert v["CHK005"] == "fail"
    assert "shell form: PID 1 is /bin/sh" in details(result, "CHK005")
    # The shell as PID 1 does not pass SIGTERM on either.
    assert v["CHK001"] == "fail"
    assert v["CHK003"] == v["CHK004"] == "pass"


def test_root_image_fails_chk003_and_its_low_port_is_not_chk004s(
    engine: tb.Engine, images: dict[str, str]
) -> None:
    result = check(engine, images["root"], "--format", "json", "--stop-timeout", "1")
    assert result.code == ExitCode.POLICY
    v = verdicts(result)
    assert v["CHK003"] == "fail" and v["CHK004"] == "pass"
    assert v["CHK001"] == v["CHK002"] == v["CHK005"] == "pass"
    assert "runs as root" in details(result, "CHK003")


def test_low_port_fails_chk004_high_port_passes(engine: tb.Engine, images: dict[str, str]) -> None:
    low = check(engine, images["low-port"], "--format", "json", "--stop-timeout", "1")
    high = check(engine, images["high-port"], "--format", "json", "--stop-timeout", "1")
    assert low.code == ExitCode.POLICY and high.code == 0
    assert verdicts(low)["CHK004"] == "fail" and "80/tcp" in details(low, "CHK004")
    assert set(verdicts(high).values()) == {"pass"}


def test_workdir_owned_by_root_without_group_write_fails_chk002(
    engine: tb.Engine, images: dict[str, str]
) -> None:
    result = check(engine, images["workdir-root"], "--format", "json", "--stop-timeout", "1")
    assert result.code == ExitCode.POLICY
    assert verdicts(result)["CHK002"] == "fail"
    text = details(result, "CHK002")
    assert "WORKDIR /app is owned by 0:0 with mode 0755" in text


def test_workdir_fixed_with_chgrp_and_chmod_g_equals_u_passes(
    engine: tb.Engine, images: dict[str, str]
) -> None:
    result = check(engine, images["workdir-fixed"], "--format", "json", "--stop-timeout", "1")
    assert result.code == 0, result.stdout
    assert "WORKDIR /app is writable" in details(result, "CHK002")


def test_an_image_with_nothing_to_run_fails_the_checks_not_the_engine(
    engine: tb.Engine, images: dict[str, str]
) -> None:
    result = check(engine, images["no-cmd"], "--format", "json")
    assert result.code == ExitCode.POLICY, result.stderr
    v = verdicts(result)
    assert v["CHK001"] == v["CHK002"] == v["CHK005"] == "fail"
    assert "the image does not start" in details(result, "CHK001")
    assert "no ENTRYPOINT or CMD" in details(result, "CHK005")


def test_workdir_slash_is_not_write_checked(engine: tb.Engine, images: dict[str, str]) -> None:
    result = check(engine, images["workdir-slash"], "--format", "json", "--ignore", "CHK001")
    assert result.code == 0, result.stdout
    assert "no WORKDIR, VOLUME or --writable path to write-check" in details(result, "CHK002")


def test_volume_and_writable_paths_are_checked(engine: tb.Engine, images: dict[str, str]) -> None:
    result = check(
        engine,
        images["workdir-fixed"],
        "--format",
        "json",
        "--stop-timeout",
        "1",
        "--writable",
        "/tmp",
        "--ignore",
        "CHK001",
    )
    assert result.code == ExitCode.POLICY
    assert "--writable /tmp does not exist in the image" in details(result, "CHK002")
    assert verdicts(result)["CHK001"] == "skip"
    vol = check(engine, images["volume-root"], "--format", "json", "--ignore", "CHK001")
    assert verdicts(vol)["CHK002"] == "fail"
    assert "VOLUME /data" in details(vol, "CHK002")


def test_an_image_without_a_shell_passes_every_check(
    engine: tb.Engine, images: dict[str, str]
) -> None:
    result = check(engine, images["no-shell"], "--format", "json", "--stop-timeout", "1")
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    # Every check has a verdict, and a passing report says so.
    assert [c["id"] for c in doc["checks"]] == ["CHK001", "CHK002", "CHK003", "CHK004", "CHK005"]
    assert all(c["verdict"] == "pass" for c in doc["checks"])
    assert doc["passed"] is True and doc["counts"] == {"pass": 5, "fail": 0, "skip": 0}


def test_user_option_is_the_uid_chk002_runs_under(
    engine: tb.Engine, images: dict[str, str]
) -> None:
    # /app is 0755 root:root: uid 0 may write it, the arbitrary uid may not.
    result = check(
        engine, images["workdir-root"], "--format", "json", "--user", "0:0", "--ignore", "CHK001"
    )
    assert verdicts(result)["CHK002"] == "pass"
    assert "--user 0:0" in details(result, "CHK002")


def test_junit_report_has_a_testcase_per_check(engine: tb.Engine, images: dict[str, str]) -> None:
    result = check(engine, images["sleep"], "--format", "junit", "--stop-timeout", "1")
    assert result.code == ExitCode.POLICY
    root = ET.fromstring(result.stdout.split("\n", 1)[1])
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name", "").split()[0] for c in cases] == [f"CHK00{i}" for i in range(1, 6)]
    failed = [c.get("name", "").split()[0] for c in cases if c.find("failure") is not None]
    assert failed == ["CHK001"]
    assert root.get("failures") == "1" and root.get("tests") == "5"


def test_text_report_and_ignore(engine: tb.Engine, images: dict[str, str]) -> None:
    result = check(engine, images["sleep"], "--ignore", "CHK001")
    assert result.code == 0, result.stderr
    assert "skip  CHK001" in result.stdout and "ignored (--ignore)" in result.stdout
    assert "pass  CHK005" in result.stdout
    assert "4 passed, 0 failed, 1 skipped" in result.stderr


def test_config_section_sets_the_defaults(
    engine: tb.Engine, images: dict[str, str], tmp_path: Path
) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".imgtag.toml").write_text('[check]\nignore = ["CHK001"]\nwritable = ["/etc"]\n')
    result = run_cli(
        ["check", images["sleep"], "--format", "json"],
        cwd=tmp_path,
        env={"DOCKER_HOST": engine.host},
    )
    assert verdicts(result)["CHK001"] == "skip"
    # The engine makes /etc (for hosts and resolv.conf) as root:root 0755.
    assert "--writable /etc is owned by 0:0 with mode 0755" in details(result, "CHK002")
    (tmp_path / ".imgtag.toml").write_text("[check]\nstop_timeot = 1\n")
    bad = run_cli(["check", images["sleep"]], cwd=tmp_path, env={"DOCKER_HOST": engine.host})
    assert bad.code == ExitCode.USAGE
    assert "unknown key check.stop_timeot" in bad.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check-it/none-such:1"], "has no image 'check-it/none-such:1'"),
        (["check-it/sleep:1", "--ignore", "CHK009"], "--ignore CHK009: no such check"),
        (["check-it/sleep:1", "--user", "app"], "--user 'app': give UID:GID as numbers"),
        (["check-it/sleep:1", "--writable", "data"], "give an absolute path"),
        (["check-it/sleep:1", "--config", "/nonexistent.yaml"], "no such file"),
    ],
)
def test_bad_input_is_exit_2_with_one_sentence(
    engine: tb.Engine, images: dict[str, str], args: list[str], message: str
) -> None:
    result = check(engine, *args)
    assert result.code == ExitCode.USAGE
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("imgtag: error:") == 1


def test_no_engine_is_exit_6(tmp_path: Path) -> None:
    result = run_cli(
        ["check", "check-it/sleep:1"], env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    )
    assert result.code == ExitCode.ENGINE
    assert "cannot reach the Docker engine" in result.stderr


class Process:
    """One ``imgtag check`` process, its stderr read line by line as it comes."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("IMGTAG_")}
        full.update({"PYTHONPATH": str(ROOT), **env})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tagger", "check", *args],
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)

    def wait_for_line(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if needle in self.lines.get(timeout=0.2):
                    return
            except queue.Empty:
                assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.err}"
        raise AssertionError(f"never printed {needle!r}: {''.join(self.err)}")


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, ExitCode.TERMINATED), (signal.SIGINT, ExitCode.INTERRUPTED)],
)
def test_a_signal_to_imgtag_removes_every_container(
    engine: tb.Engine,
    images: dict[str, str],
    docker_client: docker.DockerClient,
    signum: int,
    code: int,
) -> None:
    # A 60 s grace period: imgtag is inside the engine's stop of a PID 1 that ignores
    # SIGTERM when the signal comes, with two containers of its own running.
    run = Process([images["sleep"], "--stop-timeout", "60"], {"DOCKER_HOST": engine.host})
    try:
        run.wait_for_line("check: CHK001: stopping")
        assert len(leftovers(docker_client)) == 2
        run.proc.send_signal(signum)
        assert run.proc.wait(timeout=30) == code
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    run.reader.join(timeout=10)
    assert f"stopped by {signal.Signals(signum).name}; cleaned up" in "".join(run.err)
    assert leftovers(docker_client) == []


def test_sigterm_while_structure_tests_run_in_threads_removes_their_containers(
    engine: tb.Engine,
    images: dict[str, str],
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    config = tmp_path / "long.yaml"
    config.write_text(
        "schemaVersion: 2.0.0\ncommandTests:\n"
        + "".join(
            f"  - {{name: long{i}, command: /bin/busybox, args: [sleep, '60']}}\n" for i in range(3)
        )
        + "fileExistenceTests:\n  - {name: busybox, path: /bin/busybox}\n"
    )
    run = Process([images["tini"], "--config", str(config)], {"DOCKER_HOST": engine.host})
    try:
        # The two CHK containers and at least one command test's are there.
        deadline = time.monotonic() + 60
        while len(leftovers(docker_client)) < 3:
            assert time.monotonic() < deadline, "".join(run.err)
            assert run.proc.poll() is None, "".join(run.err)
            time.sleep(0.05)
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(timeout=60) == ExitCode.TERMINATED
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    run.reader.join(timeout=10)
    assert "stopped by SIGTERM; cleaned up" in "".join(run.err)
    assert leftovers(docker_client) == []
