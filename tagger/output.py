"""Rendering data for stdout: JSON and dotenv. Pure, no I/O.

Data goes to stdout in the format asked for; progress and errors go to stderr
(elsewhere). dotenv output is what ``docker --env-file``, ``source`` and
``$GITHUB_OUTPUT`` all read: ``KEY=value`` lines, quoted only when a value needs it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

_SAFE_VALUE_RE = re.compile(r"[A-Za-z0-9_.,:/@+=-]*\Z")


def to_json(data: object) -> str:
    """Stable JSON: keys in the order given, UTF-8 kept.

    >>> to_json({"tag": "1.2.3-4", "dirty": False})
    '{"tag": "1.2.3-4", "dirty": false}'
    """
    return json.dumps(data, ensure_ascii=False)


def dotenv_value(value: object) -> str:
    """One value as dotenv text: booleans lower-case, ``None`` empty, odd text quoted.

    >>> dotenv_value(True), dotenv_value(None), dotenv_value(17), dotenv_value("a b$")
    ('true', '', '17', "'a b$'")
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if _SAFE_VALUE_RE.match(text):
        return text
    # Single quotes: no expansion when a shell sources the file.
    return "'" + text.replace("'", "'\\''") + "'"


def to_dotenv(data: Mapping[str, object], prefix: str = "IMGTAG_") -> str:
    """``PREFIX_KEY=value`` lines, one per key, upper-cased.

    >>> print(to_dotenv({"tag": "1.2.3-4", "base_tag": None}), end="")
    IMGTAG_TAG=1.2.3-4
    IMGTAG_BASE_TAG=
    """
    return "".join(f"{prefix}{key.upper()}={dotenv_value(v)}\n" for key, v in data.items())
