"""``imgtag check``'s options over ``[tool.imgtag.check]``. Reads the config file.

Option > ``IMGTAG_*`` variable > file > default, as everywhere (``tagger.config``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tagger.check.results import CHECK_IDS
from tagger.errors import UsageError

if TYPE_CHECKING:
    from tagger.config import Config

#: OpenShift gives each project a range of uids from 1000000000 up and runs the image
#: under one of them, in group 0; this one is such a uid (any high one does).
DEFAULT_USER = "1000680000:0"
#: How long a started container must keep running before its checks are judged.
SETTLE_SECONDS = 1.0

CHECK_DEFAULTS: Mapping[str, Any] = {
    "config": None,
    "stop_timeout": 10.0,
    "user": DEFAULT_USER,
    "writable": [],
    "ignore": [],
    "build_push": False,
}


@dataclass(frozen=True, slots=True)
class CheckSettings:
    config: str | None = None  # a container-structure-test file
    stop_timeout: float = 10.0
    user: str = DEFAULT_USER
    writable: tuple[str, ...] = ()
    ignore: frozenset[str] = frozenset()
    #: build-push without --check: off, "on" or "strict".
    build_push: str = "off"

    @classmethod
    def resolve(
        cls, given: Mapping[str, Any], root: str = ".", project: Config | None = None
    ) -> CheckSettings:
        """
        >>> from tagger.config import Config
        >>> s = CheckSettings.resolve({"ignore": ["chk001,CHK005"], "stop_timeout": None},
        ...                           project=Config(None, {"check": {"stop_timeout": 2}}))
        >>> sorted(s.ignore), s.stop_timeout, s.user
        (['CHK001', 'CHK005'], 2.0, '1000680000:0')
        """
        from tagger import config

        project = project if project is not None else config.load(root)
        values = project.resolve("check", dict(given), dict(CHECK_DEFAULTS))
        timeout = float(values["stop_timeout"])
        if not 0 <= timeout <= 3600:
            raise UsageError(f"--stop-timeout {timeout:g}: give 0 to 3600 seconds")
        user = str(values["user"])
        uid, sep, gid = user.partition(":")
        if not uid.isdigit() or (sep and not gid.isdigit()):
            raise UsageError(
                f"--user {user!r}: give UID:GID as numbers (an arbitrary uid in group 0, "
                f"as OpenShift assigns: {DEFAULT_USER})"
            )
        ignore = set()
        for item in values["ignore"]:
            for part in str(item).split(","):
                if part.strip():
                    ignore.add(part.strip().upper())
        unknown = sorted(ignore - set(CHECK_IDS))
        if unknown:
            raise UsageError(
                f"--ignore {', '.join(unknown)}: no such check (checks: {', '.join(CHECK_IDS)})"
            )
        writable = tuple(str(p) for p in values["writable"])
        for path in writable:
            if not path.startswith("/"):
                raise UsageError(f"--writable {path!r}: give an absolute path in the image")
        mode = values["build_push"]
        mode = "strict" if mode == "strict" else ("on" if mode in (True, "on") else "off")
        return cls(
            config=values["config"],
            stop_timeout=timeout,
            user=user if sep else f"{user}:0",
            writable=writable,
            ignore=frozenset(ignore),
            build_push=mode,
        )
