"""Base image rules: IMG001 (pin the base), IMG002 (prefer a small variant). Pure.

Follows hadolint's DL3006/DL3007 for tags; scratch and earlier stages
(``FROM build``) need none. A base that still holds a ``${VAR}`` without a default
comes from ``--build-arg`` and is not judged.
"""

from __future__ import annotations

from collections.abc import Iterator

from tagger.lint.facts import image_name
from tagger.lint.findings import Rule, Severity
from tagger.lint.parser import Dockerfile


def _external_stages(df: Dockerfile) -> Iterator[tuple[int, str]]:
    for stage in df.stages:
        if stage.base.lower() == "scratch" or df.parent_stage(stage) is not None:
            continue
        if "$" in stage.base:
            continue
        yield stage.from_line, stage.base


def check_unpinned(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG001: a base image without a tag or digest, or ``:latest``, changes under you.

    Catches ``FROM ubuntu``, ``FROM node:latest``; not ``FROM scratch``, ``FROM build``
    (an earlier stage), ``FROM python:3.12-slim`` or ``FROM alpine@sha256:...``.
    Fix: pin a version tag, or a digest for full reproducibility.
    """
    for line, base in _external_stages(df):
        _, tag, digest = image_name(base)
        if digest:
            continue
        if tag is None:
            yield line, f"base image {base} has no tag: it means :latest and moves"
        elif tag == "latest":
            yield line, f"base image {base} uses :latest, which moves"


# repository -> what a small variant looks like in its tags
_SMALL_MARKERS = ("slim", "alpine", "distroless", "minimal", "micro", "busybox", "nanoserver")
_BIG_BASES: dict[str, str] = {
    "debian": "debian:<release>-slim",
    "ubuntu": "debian:<release>-slim, alpine or distroless",
    "python": "python:<version>-slim or -alpine",
    "node": "node:<version>-slim or -alpine",
    "golang": "golang:<version>-alpine (or build in a builder stage, run FROM scratch)",
    "openjdk": "eclipse-temurin:<version>-jre-alpine",
    "eclipse-temurin": "eclipse-temurin:<version>-jre-alpine",
    "amazoncorretto": "amazoncorretto:<version>-alpine",
    "ruby": "ruby:<version>-slim or -alpine",
    "php": "php:<version>-fpm-alpine or -cli-alpine",
    "perl": "perl:<version>-slim",
    "rust": "rust:<version>-slim or a scratch/distroless final stage",
    "buildpack-deps": "debian:<release>-slim",
    "nginx": "nginx:<version>-alpine (or nginx:<version>-alpine-slim)",
    "httpd": "httpd:<version>-alpine",
    "elixir": "elixir:<version>-alpine",
    "erlang": "erlang:<version>-alpine",
    "maven": "a builder stage, and a -jre-alpine final stage",
    "gradle": "a builder stage, and a -jre-alpine final stage",
    "mcr.microsoft.com/dotnet/aspnet": "mcr.microsoft.com/dotnet/aspnet:<version>-alpine",
    "mcr.microsoft.com/dotnet/sdk": "a builder stage, and an aspnet/runtime -alpine final stage",
    "rockylinux": "rockylinux:<version>-minimal",
    "almalinux": "almalinux:<version>-minimal",
    "fedora": "fedora-minimal",
    "registry.access.redhat.com/ubi8/ubi": "ubi8/ubi-minimal or ubi8/ubi-micro",
    "registry.access.redhat.com/ubi9/ubi": "ubi9/ubi-minimal or ubi9/ubi-micro",
    "registry.fedoraproject.org/fedora": "registry.fedoraproject.org/fedora-minimal",
}


def check_big_base(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG002: the final image is built on a big base where a small variant exists.

    Catches ``python:3.12``, ``node:20``, ``debian:12``, ``ubuntu:22.04``, ``ubi9/ubi``;
    not ``python:3.12-slim``, ``node:20-alpine``, ``eclipse-temurin:21-jre-alpine``, nor a
    big image in a builder stage. ``centos`` has no small variant of its own (another
    distribution is not a variant), so it is not flagged (only the final stage's chain ships).
    Fix: the slim/alpine/minimal variant, or distroless/scratch for static binaries.
    """
    chain = df.stage_chain(df.final_stage)
    root = chain[-1]
    if root.base.lower() == "scratch" or "$" in root.base:
        return
    name, tag, _ = image_name(root.base)
    hint = _BIG_BASES.get(name)
    if hint is None:
        return
    tag_text = (tag or "").lower()
    if any(marker in tag_text for marker in _SMALL_MARKERS):
        return
    yield root.from_line, f"final image is built on {root.base}, a big image; use {hint}"


RULES = (
    Rule(
        "IMG001",
        Severity.ERROR,
        "base image without a tag or digest, or :latest",
        "pin the base image to a version tag or a digest (FROM python:3.12-slim@sha256:...)",
        check_unpinned,
    ),
    Rule(
        "IMG002",
        Severity.INFO,
        "big base image where a small variant exists",
        "use the slim, alpine or minimal variant, or distroless/scratch for static binaries",
        check_big_base,
    ),
)
