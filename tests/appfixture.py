"""A git checkout of a tiny application image: ``FROM scratch`` + Debian's static busybox.

``make_app(tmp_path / "app", "hello")`` makes a real repository (``tests/gitfixture.py``)
holding a Dockerfile, ``busybox`` (copied from ``/bin/busybox``, package busybox-static),
``content.txt`` and a ``.dockerignore`` that keeps ``.git`` out of the build context,
commits it and tags the commit (``v1.0.0`` by default). Different ``content`` gives a
different commit and a different image; the busybox layer is shared by all of them.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from gitfixture import GitRepoBuilder

BUSYBOX = Path("/bin/busybox")

DOCKERFILE = """\
FROM scratch
COPY busybox /busybox
COPY content.txt /content.txt
CMD ["/busybox", "cat", "/content.txt"]
"""


def make_app(
    path: Path,
    content: str = "hello",
    *,
    tag: str | None = "v1.0.0",
    origin: str | None = None,
    dockerfile: str = DOCKERFILE,
    files: Mapping[str, str] | None = None,
) -> GitRepoBuilder:
    """A committed (and, unless ``tag`` is None, tagged) checkout that builds an image.

    ``origin`` sets ``remote.origin.url`` (nothing is fetched from it); ``files`` adds
    more text files to the first commit.
    """
    repo = GitRepoBuilder(path)
    shutil.copy2(BUSYBOX, repo.path / "busybox")
    repo.git("add", "--", "busybox")
    repo.commit(
        "feat: the app",
        files={
            "Dockerfile": dockerfile,
            "content.txt": content,
            ".dockerignore": ".git\n",
            **(files or {}),
        },
    )
    if tag is not None:
        repo.tag(tag)
    if origin is not None:
        repo.git("remote", "add", "origin", origin)
    return repo


def change(repo: GitRepoBuilder, content: str, message: str = "fix: change") -> GitRepoBuilder:
    """Commit new ``content.txt`` (a new commit and, once built, a new image)."""
    return repo.commit(message, files={"content.txt": content})
