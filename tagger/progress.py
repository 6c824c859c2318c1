"""The one progress logger: a line on stderr, redacted and with control characters escaped.

Data goes to stdout (``tagger.output``); progress goes here. Build logs, registry text and
helper output pass through it, so a credential a tool echoes is masked
(``tagger.errors.redact``) and bytes from a registry or a build cannot drive the terminal.
Does I/O: writes stderr.
"""

from __future__ import annotations

import sys

from tagger.errors import escape_control, redact


def log(line: str) -> None:
    """Write one progress line to stderr (a trailing line break in ``line`` is dropped)."""
    sys.stderr.write(escape_control(redact(line.rstrip("\r\n"))) + "\n")
    sys.stderr.flush()
