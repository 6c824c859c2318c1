"""CHK003, CHK004 and CHK005: what the image's config alone tells. Pure.

They read :class:`ImageFacts`, taken from the engine's ``docker image inspect`` document
(or a registry's image config: the same ``Config`` object).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tagger.check.results import Result, failed, passed, title

#: Inits that forward signals to their child and reap zombies.
INITS = frozenset({"tini", "tini-static", "dumb-init", "catatonit", "docker-init"})
#: What the Dockerfile's shell form writes in front of the command.
SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh"})


@dataclass(frozen=True, slots=True)
class ImageFacts:
    user: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    exposed: tuple[str, ...]  # "8080/tcp"
    workdir: str
    volumes: tuple[str, ...]
    env: Mapping[str, str]
    labels: Mapping[str, str]
    stop_signal: str | None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ImageFacts:
        """From an image config's ``Config`` object (``None`` fields are empty).

        >>> f = ImageFacts.from_config({"User": "1001", "Cmd": ["/app"], "Env": ["A=b=c"],
        ...                             "ExposedPorts": {"80/tcp": {}}})
        >>> f.user, f.cmd, dict(f.env), f.exposed
        ('1001', ('/app',), {'A': 'b=c'}, ('80/tcp',))
        """
        c = config or {}
        env: dict[str, str] = {}
        for item in c.get("Env") or ():
            key, _, value = str(item).partition("=")
            env[key] = value
        return cls(
            user=str(c.get("User") or ""),
            entrypoint=tuple(str(x) for x in c.get("Entrypoint") or ()),
            cmd=tuple(str(x) for x in c.get("Cmd") or ()),
            exposed=tuple(sorted(str(p) for p in (c.get("ExposedPorts") or {}))),
            workdir=str(c.get("WorkingDir") or ""),
            volumes=tuple(sorted(str(v) for v in (c.get("Volumes") or {}))),
            env=env,
            labels={str(k): str(v) for k, v in (c.get("Labels") or {}).items()},
            stop_signal=str(c["StopSignal"]) if c.get("StopSignal") else None,
        )

    @property
    def argv(self) -> tuple[str, ...]:
        """What PID 1 runs: ENTRYPOINT followed by CMD."""
        return self.entrypoint + self.cmd


def is_root(user: str) -> bool:
    """Whether a USER value runs as root: empty (the default), ``root`` or uid 0.

    >>> [is_root(u) for u in ("", "root", "0", "0:0", "root:staff", "1001", "app:0")]
    [True, True, True, True, True, False, False]
    """
    name = user.partition(":")[0].strip()
    return name in ("", "root") or (name.isdigit() and int(name) == 0)


def chk003(facts: ImageFacts) -> Result:
    """
    >>> chk003(ImageFacts.from_config({"User": "1001:0"})).verdict.value
    'pass'
    >>> chk003(ImageFacts.from_config({})).details
    ('no USER: the image runs as root',)
    """
    name = title("CHK003")
    if not facts.user:
        return failed("CHK003", name, "no USER: the image runs as root")
    if is_root(facts.user):
        return failed("CHK003", name, f"USER {facts.user} is root")
    return passed("CHK003", name, f"USER {facts.user}")


def port_number(port: str) -> int | None:
    """
    >>> port_number("80/tcp"), port_number("8080"), port_number("x/udp")
    (80, 8080, None)
    """
    text = port.partition("/")[0]
    return int(text) if text.isdigit() else None


def chk004(facts: ImageFacts) -> Result:
    """
    >>> chk004(ImageFacts.from_config({"User": "1001", "ExposedPorts": {"80/tcp": {}}})).details
    ('EXPOSE 80/tcp: a process that is not root cannot bind a port below 1024',)
    >>> high = ImageFacts.from_config({"User": "1001", "ExposedPorts": {"8080/tcp": {}}})
    >>> chk004(high).verdict.value
    'pass'
    """
    name = title("CHK004")
    if is_root(facts.user):
        return passed("CHK004", name, "the image runs as root (see CHK003): any port can be bound")
    low = [p for p in facts.exposed if (n := port_number(p)) is not None and n < 1024]
    if low:
        return failed(
            "CHK004",
            name,
            *(f"EXPOSE {p}: a process that is not root cannot bind a port below 1024" for p in low),
        )
    shown = ", ".join(facts.exposed) or "none"
    return passed("CHK004", name, f"exposed: {shown}")


def shell_form(argv: Sequence[str]) -> str | None:
    """The shell text when ``argv`` is a shell running a command string (what a
    Dockerfile's shell form writes), else ``None``.

    >>> shell_form(["/bin/sh", "-c", "exec app"]), shell_form(["/app", "-c", "x"])
    ('exec app', None)
    """
    if len(argv) >= 3 and posixpath.basename(argv[0]) in SHELLS and argv[1] == "-c":
        return argv[2]
    return None


def chk005(facts: ImageFacts) -> Result:
    """
    >>> chk005(ImageFacts.from_config({"Cmd": ["/bin/sh", "-c", "sleep 100"]})).verdict.value
    'fail'
    >>> chk005(ImageFacts.from_config({"Entrypoint": ["/tini", "--"],
    ...                                "Cmd": ["/bin/sh", "-c", "x"]})).details
    ('PID 1 is tini, an init',)
    >>> chk005(ImageFacts.from_config({"Cmd": ["/app", "serve"]})).details
    ('exec form: PID 1 is /app',)
    """
    name = title("CHK005")
    argv = facts.argv
    if not argv:
        return failed("CHK005", name, "no ENTRYPOINT or CMD: nothing for PID 1 to run")
    first = posixpath.basename(argv[0])
    if first in INITS:
        return passed("CHK005", name, f"PID 1 is {first}, an init")
    text = shell_form(argv)
    if text is not None:
        words = text.split()
        if words and words[0] == "exec":
            return passed("CHK005", name, f"shell form, but the shell execs: {text!r}")
        return failed(
            "CHK005",
            name,
            f"shell form: PID 1 is {argv[0]}, which runs {text!r} as its child and does not "
            "pass SIGTERM on; write it in exec form (JSON) or start it with exec",
        )
    return passed("CHK005", name, f"exec form: PID 1 is {argv[0]}")
