"""``imgtag build-push IMAGE``: build and push an immutable tag. A few lines of glue.

Heavy imports (requests, the docker SDK) happen inside the command body only.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from tagger.cli.options import (
    BuildOpt,
    BumpOpt,
    CaFileOpt,
    CounterOpt,
    InitialVersionOpt,
    InsecureOpt,
    RepoOpt,
    TagPrefixOpt,
    TextFormat,
)


class BuilderName(enum.StrEnum):
    AUTO = "auto"
    DOCKER = "docker"
    BUILDKIT = "buildkit"
    BUILDAH = "buildah"


class CheckMode(enum.StrEnum):
    ON = "on"
    STRICT = "strict"
    OFF = "off"


def optional_values(args: list[str]) -> list[str]:
    """``--check`` alone means ``--check=on`` (typer has no option with an optional value).

    >>> optional_values(["build-push", "app", "--check", "--check=strict", "--", "--check"])
    ['build-push', 'app', '--check=on', '--check=strict', '--', '--check']
    """
    if "build-push" not in args:
        return args
    out, rest = [], False
    for arg in args:
        rest = rest or arg == "--"
        out.append("--check=on" if arg == "--check" and not rest else arg)
    return out


class OnExists(enum.StrEnum):
    FAIL = "fail"
    SKIP = "skip"


def register(app: typer.Typer) -> None:
    @app.command("build-push")
    def build_push(
        images: Annotated[
            list[str],
            typer.Argument(
                help="[registry/]path, without tag or digest; more than one: the same tag in "
                "each (built once, pushed to the first, promoted to the others).",
                metavar="IMAGE...",
            ),
        ],
        repo: RepoOpt = None,
        tag_prefix: TagPrefixOpt = None,
        bump: BumpOpt = None,
        initial_version: InitialVersionOpt = None,
        build: BuildOpt = None,
        counter: CounterOpt = None,
        context: Annotated[
            str | None, typer.Option("--context", help="Build context. [default: .]")
        ] = None,
        file: Annotated[
            str | None,
            typer.Option("--file", "-f", help="Dockerfile. [default: CONTEXT/Dockerfile]"),
        ] = None,
        build_arg: Annotated[
            list[str] | None, typer.Option("--build-arg", help="KEY=VALUE, repeatable.")
        ] = None,
        target: Annotated[str | None, typer.Option("--target", help="Build stage.")] = None,
        label: Annotated[
            list[str] | None, typer.Option("--label", help="KEY=VALUE, repeatable.")
        ] = None,
        alias: Annotated[
            list[str] | None,
            typer.Option("--alias", help="Floating tag (latest, 1, 1.4, main); repeatable."),
        ] = None,
        squash: Annotated[
            bool | None, typer.Option("--squash/--no-squash", help="Squash the image's own layers.")
        ] = None,
        lint: Annotated[
            bool | None, typer.Option("--lint/--no-lint", help="Lint the Dockerfile first.")
        ] = None,
        check: Annotated[
            CheckMode | None,
            typer.Option(
                "--check",
                case_sensitive=False,
                help="Run imgtag check on the image after the build, before the tag is "
                "written (--check, --check=strict: a check that cannot run fails too, "
                "--check=off). [default: [tool.imgtag.check] build_push, else off]",
            ),
        ] = None,
        on_exists: Annotated[
            OnExists | None,
            typer.Option(
                "--on-exists", help="fail, or skip when the existing image is HEAD's commit."
            ),
        ] = None,
        allow_dirty: Annotated[
            bool | None, typer.Option("--allow-dirty", help="Build from a dirty work tree.")
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Derive and check; build and push nothing.")
        ] = False,
        fmt: Annotated[
            TextFormat, typer.Option("--format", help="text or json on stdout.")
        ] = TextFormat.TEXT,
        env_file: Annotated[
            str | None, typer.Option("--env-file", help="Also write the result as dotenv.")
        ] = None,
        builder: Annotated[
            BuilderName | None,
            typer.Option(
                "--builder",
                envvar="IMGTAG_BUILDER",
                case_sensitive=False,
                help="auto (buildkit, else docker, else buildah), docker (the engine's "
                "classic builder), buildkit, or buildah (no engine needed). [default: auto]",
            ),
        ] = None,
        secret: Annotated[
            list[str] | None,
            typer.Option(
                "--secret",
                help="id=ID,src=PATH or id=ID,env=VAR: a secret for RUN --mount=type=secret "
                "(buildkit, buildah); repeatable.",
            ),
        ] = None,
        platform: Annotated[
            list[str] | None,
            typer.Option(
                "--platform",
                help="os/arch[/variant][,...]: more than one makes the tag an image index "
                "(buildkit, buildah).",
            ),
        ] = None,
        network: Annotated[
            str | None,
            typer.Option("--network", help="Network of RUN steps (host, none, default...)."),
        ] = None,
        sign: Annotated[
            bool | None,
            typer.Option(
                "--sign/--no-sign",
                help="Sign the pushed digest with cosign before the final tag is written "
                "(an index and each platform manifest).",
            ),
        ] = None,
        sign_key: Annotated[
            str | None,
            typer.Option(
                "--sign-key",
                envvar="IMGTAG_SIGN_KEY",
                help="cosign key: a file, env://VAR or a KMS URI (password in "
                "COSIGN_PASSWORD). Without it --sign is keyless (the CI's OIDC token).",
            ),
        ] = None,
        sign_tlog: Annotated[
            bool | None,
            typer.Option(
                "--sign-tlog/--no-sign-tlog",
                help="Record the signature in the transparency log (cosign's default); "
                "--no-sign-tlog for a key used offline. [default: on]",
            ),
        ] = None,
        cache_from: Annotated[
            list[str] | None,
            typer.Option(
                "--cache-from",
                envvar="IMGTAG_CACHE_FROM",
                help="Cache to read, as buildx: type=registry,ref=R (a bare R means that), "
                "type=inline, type=local,src=DIR; repeatable.",
            ),
        ] = None,
        cache_to: Annotated[
            list[str] | None,
            typer.Option(
                "--cache-to",
                envvar="IMGTAG_CACHE_TO",
                help="Cache to write, as buildx: type=registry,ref=R[,mode=max], type=inline, "
                "type=local,dest=DIR; a failed write fails the run unless ignore-error=true.",
            ),
        ] = None,
        no_cache: Annotated[
            bool | None,
            typer.Option("--no-cache", envvar="IMGTAG_NO_CACHE", help="Build without any cache."),
        ] = None,
        pull: Annotated[
            bool | None,
            typer.Option("--pull", envvar="IMGTAG_PULL", help="Always pull the FROM images."),
        ] = None,
        provenance: Annotated[
            str | None,
            typer.Option(
                "--provenance",
                envvar="IMGTAG_PROVENANCE",
                help="false, min or max: BuildKit's provenance attestation (buildkit with "
                "buildx; default: BuildKit's own).",
            ),
        ] = None,
        annotation: Annotated[
            list[str] | None,
            typer.Option(
                "--annotation",
                envvar="IMGTAG_ANNOTATION",
                help="KEY=VALUE: an OCI annotation of the manifest (buildkit, buildah); "
                "repeatable.",
            ),
        ] = None,
        insecure_registry: InsecureOpt = None,
        ca_file: CaFileOpt = None,
    ) -> None:
        """Build IMAGE:X.Y.Z-N and push it; never overwrite an existing tag."""
        import dataclasses
        import os

        from tagger.build.options import BuildPushOptions
        from tagger.build.outputs import write_outputs
        from tagger.build.wiring import publish
        from tagger.lifecycle import Stop, handling_signals
        from tagger.output import to_json

        given = {
            "repo": repo,
            "tag_prefix": tag_prefix,
            "bump": bump,
            "initial_version": initial_version,
            "build": build,
            "counter": counter,
            "context": context,
            "file": file,
            "build_arg": build_arg or None,
            "target": target,
            "label": label or None,
            "alias": alias or None,
            "squash": squash,
            "lint": lint,
            "check": check.value if check else None,
            "on_exists": on_exists.value if on_exists else None,
            "allow_dirty": allow_dirty,
            "builder": builder.value if builder else None,
            "secret": secret or None,
            "platform": platform or None,
            "network": network,
            "sign": sign,
            "sign_key": sign_key,
            "sign_tlog": sign_tlog,
            "cache_from": cache_from or None,
            "cache_to": cache_to or None,
            "no_cache": no_cache,
            "pull": pull,
            "provenance": provenance,
            "annotation": annotation or None,
        }
        options = BuildPushOptions.resolve(images[0], given, dry_run=dry_run)
        if len(images) > 1:
            options = dataclasses.replace(options, also=tuple(images[1:]))
        with handling_signals(Stop()) as stop:
            result = publish(
                options,
                os.environ,
                insecure=tuple(insecure_registry or ()),
                ca_file=ca_file,
                stop=stop,
            )
            with stop.shielded():  # a published tag is always reported
                write_outputs(result, env_file, os.environ)
                if fmt is TextFormat.JSON:
                    typer.echo(to_json(result.as_dict()))
                else:
                    image_ref = f"{result.image}:{result.tag}"
                    typer.echo(image_ref + (f"@{result.digest}" if result.digest else ""))
                    for row in result.also or []:
                        typer.echo(f"{row['image']}:{row['tag']}@{result.digest} {row['status']}")
            stop.check()
