"""``imgtag build-push``'s option and result values, and resolving the options.

Pure, apart from :meth:`BuildPushOptions.resolve`, which reads the project's config
file (``tagger.config``) and the ``IMGTAG_*`` variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tagger.build.builders.base import BUILDER_NAMES, SecretSpec, parse_platforms, parse_secret
from tagger.build.cache import CacheSpec, parse_caches, parse_provenance
from tagger.check.settings import CheckSettings
from tagger.errors import UsageError
from tagger.lint.settings import LintSettings
from tagger.registry.markers import DEFAULT_LEASE_SECONDS, lease_seconds
from tagger.registry.platform import Platform
from tagger.version.bump import Derivation
from tagger.version.next import NEXT_DEFAULTS, NextOptions


@dataclass(frozen=True)
class BuildPushOptions:
    image: str
    next: NextOptions
    context: str = "."
    file: str | None = None
    build_args: Sequence[str] = ()
    target: str | None = None
    labels: Sequence[str] = ()
    aliases: Sequence[str] = ()
    squash: bool = False
    lint: bool = True
    lint_policy: LintSettings = field(default_factory=LintSettings)
    on_exists: str = "fail"
    allow_dirty: bool = False
    dry_run: bool = False
    claim_lease: float = DEFAULT_LEASE_SECONDS
    builder: str = "auto"
    secrets: tuple[SecretSpec, ...] = ()
    platforms: tuple[Platform, ...] = ()
    network: str | None = None
    #: ``--sign``: sign the verified digest before the final tag is written
    #: (``tagger.build.signing``); ``sign_key`` ``None`` is keyless.
    sign: bool = False
    sign_key: str | None = None
    sign_tlog: bool = True
    cache_from: tuple[CacheSpec, ...] = ()
    cache_to: tuple[CacheSpec, ...] = ()
    no_cache: bool = False
    pull: bool = False
    provenance: str | None = None
    annotations: Sequence[str] = ()
    #: The configuration's ``provider`` (how claims are deleted); ``--provider`` and
    #: ``IMGTAG_PROVIDER`` are read where the client is opened.
    provider: str | None = None
    #: ``build-push IMAGE IMAGE...``: the other repositories that get the same tag, by a
    #: promote of the image pushed to ``image`` (each checked before the build).
    also: tuple[str, ...] = ()
    #: ``--check``: "off", "on" or "strict"; ``[tool.imgtag.check]`` gives the rest.
    check: str = "off"
    check_settings: CheckSettings = field(default_factory=CheckSettings)

    @classmethod
    def resolve(
        cls,
        image: str,
        given: Mapping[str, Any],
        *,
        dry_run: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> BuildPushOptions:
        """Option > ``IMGTAG_*`` variable > config file > default, for every option.

        ``given`` maps option names (``next``'s included) to the values given, ``None``
        for not given. ``[tool.imgtag.lint]`` applies to the lint step as to ``imgtag lint``.
        """
        from tagger import config

        repo = given.get("repo") or NEXT_DEFAULTS["repo"]
        project = config.load(repo)  # once, for the next, build-push and lint options
        nopts = NextOptions.resolve(
            {**{k: given.get(k) for k in NEXT_DEFAULTS if k != "image"}, "image": image},
            project,
        )
        own = {k: given.get(k) for k in BUILD_PUSH_DEFAULTS}
        values = project.resolve("", own, dict(BUILD_PUSH_DEFAULTS))
        lease = lease_seconds(os.environ if env is None else env, project.value("claim_lease"))
        builder = str(values["builder"]).lower()
        check_settings = CheckSettings.resolve({}, nopts.repo, project)
        check = given.get("check") or check_settings.build_push
        if builder not in ("auto", *BUILDER_NAMES):
            raise UsageError(
                f"--builder {values['builder']}: unknown builder (auto, {', '.join(BUILDER_NAMES)})"
            )
        return cls(
            image=image,
            next=nopts,
            context=values["context"],
            file=values["file"],
            build_args=tuple(values["build_arg"]),
            target=values["target"],
            labels=tuple(values["label"]),
            aliases=tuple(values["alias"]),
            squash=bool(values["squash"]),
            lint=bool(values["lint"]),
            lint_policy=LintSettings.resolve({}, nopts.repo, project),
            on_exists=str(values["on_exists"]),
            allow_dirty=bool(values["allow_dirty"]),
            dry_run=dry_run,
            claim_lease=lease,
            builder=builder,
            secrets=tuple(parse_secret(v) for v in values["secret"]),
            platforms=parse_platforms(values["platform"]),
            network=values["network"] or None,
            sign=bool(values["sign"]),
            sign_key=values["sign_key"] or None,
            sign_tlog=bool(values["sign_tlog"]),
            cache_from=parse_caches(values["cache_from"], "--cache-from"),
            cache_to=parse_caches(values["cache_to"], "--cache-to"),
            no_cache=bool(values["no_cache"]),
            pull=bool(values["pull"]),
            provenance=parse_provenance(values["provenance"]),
            annotations=tuple(values["annotation"]),
            provider=project.value("provider"),
            check=str(check),
            check_settings=check_settings,
        )


#: build-push's own defaults, by option name (config keys are the same).
BUILD_PUSH_DEFAULTS: Mapping[str, Any] = {
    "context": ".",
    "file": None,
    "build_arg": [],
    "target": None,
    "label": [],
    "alias": [],
    "squash": False,
    "lint": True,
    "on_exists": "fail",
    "allow_dirty": False,
    "builder": "auto",
    "secret": [],
    "platform": [],
    "network": None,
    "sign": False,
    "sign_key": None,
    "sign_tlog": True,
    "cache_from": [],
    "cache_to": [],
    "no_cache": False,
    "pull": False,
    "provenance": None,
    "annotation": [],
}


@dataclass
class BuildPushResult:
    """What a run published (or found, or would build): filled in step by step by the
    guard (``tagger.build.publish``), then printed and written as outputs."""

    image: str
    tag: str
    digest: str | None
    aliases: list[str] = field(default_factory=list)
    pushed: bool = False
    lint: str = "skipped"
    lint_findings: dict[str, int] = field(default_factory=dict)
    squashed: dict[str, Any] | None = None
    derivation: Derivation | None = None
    builder: str | None = None
    signed: bool = False
    #: The signature tags written (``sha256-<hex>.sig``, one per signed manifest).
    signatures: list[str] = field(default_factory=list)
    #: ``build-push IMAGE IMAGE...``: one row per other repository (image, tag, status,
    #: blobs_copied, blobs_mounted, bytes_copied, aliases); ``None`` for one image.
    also: list[dict[str, Any]] | None = None
    check: str = "skipped"  # passed | failed | skipped
    check_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        doc = self._as_dict()
        if self.also is not None:
            doc["also"] = self.also
        return doc

    def _as_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "tag": self.tag,
            "digest": self.digest,
            "aliases": self.aliases,
            "pushed": self.pushed,
            "lint": self.lint,
            "lint_findings": self.lint_findings,
            "squash": self.squashed,
            "builder": self.builder,
            "signed": self.signed,
            "signatures": self.signatures,
            "check": self.check,
        }


def parse_key_values(items: Sequence[str], what: str) -> dict[str, str]:
    """``K=V`` strings to a dict; a missing ``=`` is a usage error.

    >>> parse_key_values(["A=1", "B=x=y"], "--build-arg")
    {'A': '1', 'B': 'x=y'}
    >>> parse_key_values(["A"], "--label")
    Traceback (most recent call last):
    tagger.errors.UsageError: --label 'A' is not KEY=VALUE
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {item!r} is not KEY=VALUE")
        out[key] = value
    return out
