"""Build secrets as files: each in a private temporary directory, gone when the run ends.

Does I/O (creates, writes and removes files). Every builder takes a secret in the same
``src=`` form, so an ``env=`` secret is written to a file too; the values come from
:func:`~tagger.build.builders.base.load_secrets`, already registered for redaction.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from tagger.build.builders.base import Secret


@contextmanager
def secret_files(values: Mapping[str, bytes]) -> Iterator[tuple[Secret, ...]]:
    """Each secret (its value by id) in a file of its own, readable by us only, in a
    directory made for the run (0700), removed on leaving; no directory without secrets."""
    if not values:
        yield ()
        return
    directory = tempfile.mkdtemp(prefix="imgtag-secrets-")
    try:
        yield _write(values, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _write(values: Mapping[str, bytes], directory: str) -> tuple[Secret, ...]:
    files = []
    for index, (secret_id, value) in enumerate(values.items()):
        path = os.path.join(directory, f"s{index}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(value)
        files.append(Secret(secret_id, path))
    return tuple(files)
