"""build-push's result for the next CI step: ``$GITHUB_OUTPUT`` and ``--env-file``.

Does I/O (appends to or writes the two files).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tagger.build.options import BuildPushResult


def write_outputs(result: BuildPushResult, env_file: str | None, env: Mapping[str, str]) -> None:
    """``$GITHUB_OUTPUT`` (``image=``, ``tag=``, ``digest=``) and ``--env-file`` dotenv."""
    from tagger.output import to_dotenv

    data = {k: v for k, v in result.as_dict().items() if k in ("image", "tag", "digest")}
    if gh := env.get("GITHUB_OUTPUT"):
        with open(gh, "a", encoding="utf-8") as fh:
            for key, value in data.items():
                fh.write(f"{key}={value or ''}\n")
    if env_file:
        payload = {**data, "aliases": ",".join(result.aliases), "pushed": result.pushed}
        Path(env_file).write_text(to_dotenv(payload), encoding="utf-8")
