"""Options shared by several commands, declared once. Importing this module is cheap.

``build-push`` and ``release`` take the version options of ``next``; ``build-push``,
``prune`` and ``analyze`` share the registry connection options. Command modules import
from here, never from each other.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from tagger.version.bump import Bump
from tagger.version.ci_env import Counter


class TextFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


RepoOpt = Annotated[
    str | None,
    typer.Option(
        "--repo", envvar="IMGTAG_REPO", help="The git checkout.  [default: .]", show_default=False
    ),
]
TagPrefixOpt = Annotated[
    str | None,
    typer.Option(
        "--tag-prefix",
        envvar="IMGTAG_TAG_PREFIX",
        help="Prefix of version tags, e.g. api/v in a monorepo.  [default: an optional v]",
    ),
]
BumpOpt = Annotated[
    Bump | None,
    typer.Option(
        "--bump",
        envvar="IMGTAG_BUMP",
        help="How X.Y.Z moves past the base tag; auto reads Conventional Commits. [default: patch]",
        case_sensitive=False,
    ),
]
# `imgtag release` takes the same --bump, whose default there is auto.
ReleaseBumpOpt = Annotated[
    Bump | None,
    typer.Option(
        "--bump",
        envvar="IMGTAG_BUMP",
        help="How X.Y.Z moves past the last release; auto reads Conventional Commits. "
        "[default: auto]",
        case_sensitive=False,
    ),
]
InitialVersionOpt = Annotated[
    str | None,
    typer.Option(
        "--initial-version",
        envvar="IMGTAG_INITIAL_VERSION",
        help="Version when no tag is reachable.  [default: 0.1.0]",
    ),
]
# No envvar for --build: `imgtag next --format env` writes IMGTAG_BUILD, and sourcing
# that file (or appending it to $GITHUB_ENV) must not pin the next run's build number.
BuildOpt = Annotated[
    int | None,
    typer.Option("--build", min=0, help="N itself; wins over --counter.", show_default=False),
]
# No envvar for --counter either: the env output has IMGTAG_COUNTER (the counter used,
# e.g. "build"), and `>> $GITHUB_ENV` would silently pin every later step's counter.
CounterOpt = Annotated[
    Counter | None,
    typer.Option(
        "--counter",
        help="Where N comes from: ci, timestamp, commits, registry; auto is ci inside a "
        "known CI, else timestamp.  [default: auto]",
        case_sensitive=False,
    ),
]
ImageOpt = Annotated[
    str | None,
    typer.Option(
        "--image", envvar="IMGTAG_IMAGE", help="Image repository (for --counter registry)."
    ),
]
InsecureOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--insecure-registry",
        help="Allow plain HTTP to this registry host (loopback registries always may).",
    ),
]
CaFileOpt = Annotated[
    str | None,
    typer.Option("--ca-file", envvar="IMGTAG_CA_FILE", help="CA bundle for the registry's TLS."),
]
ProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--provider",
        envvar="IMGTAG_PROVIDER",
        help="How the registry deletes: oci, ghcr (GitHub API), dockerhub (Hub API), gitlab, "
        "harbor.  "
        "[default: by host]",
        show_default=False,
    ),
]
