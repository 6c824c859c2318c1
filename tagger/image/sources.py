"""Where ``imgtag analyze`` reads an image from, which of its layers are the base, and its
thresholds. Does I/O: the engine (``docker save``, read once as it arrives) or a
registry; the figures themselves are ``tagger.image.analyze``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tagger.registry.platform import Platform

#: How many layers ``--from-registry`` reads at once.
LAYER_WORKERS = 4

ANALYZE_DEFAULTS: Mapping[str, Any] = {
    "lowest_efficiency": None,
    "highest_wasted_bytes": None,
    "highest_user_wasted_percent": None,
    "top": 10,
    "base": None,
}


@dataclass(frozen=True, slots=True)
class AnalyzeSettings:
    """``analyze``'s options over ``[tool.imgtag.analyze]``, the thresholds as numbers."""

    base: str | None  # N bottom layers, or an image whose layers are a prefix
    top: int
    limits: Mapping[str, Any]

    @classmethod
    def resolve(cls, given: Mapping[str, Any], root: str = ".") -> AnalyzeSettings:
        from tagger import config

        values = config.load(root).resolve("analyze", dict(given), dict(ANALYZE_DEFAULTS))
        base = values["base"]
        return cls(
            None if base is None else str(base), int(values["top"]), threshold_limits(values)
        )


if TYPE_CHECKING:
    from tagger.image.analyze import Analysis, Progress
    from tagger.registry.client import RegistryClient
    from tagger.registry.reference import Reference


def threshold_limits(values: Mapping[str, Any]) -> dict[str, Any]:
    """The thresholds as numbers; a config file's values checked like the options'."""
    from tagger.errors import UsageError

    def number(key: str, low: float, high: float) -> float | None:
        value = values.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise UsageError(f"{key} must be a number from {low:g} to {high:g}, not {value!r}")
        return float(value)

    wasted = values.get("highest_wasted_bytes")
    if isinstance(wasted, bool) or (
        wasted is not None and not isinstance(wasted, str) and not _count(wasted)
    ):
        raise UsageError(f"highest_wasted_bytes must be bytes or a size like 20MB, not {wasted!r}")
    top = values.get("top")
    if not _count(top):
        raise UsageError(f"top must be a whole number of paths, not {top!r}")
    if isinstance(wasted, str):
        # Only here: importing the analysis takes 20 ms, spent while the engine exports.
        from tagger.image.analyze import parse_size

        wasted = parse_size(wasted)
    return {
        "lowest_efficiency": number("lowest_efficiency", 0.0, 1.0),
        "highest_wasted_bytes": wasted,
        "highest_user_wasted_percent": number("highest_user_wasted_percent", 0.0, 100.0),
    }


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _base_count(base: str | int | None, total: int) -> int | None:
    """``--base N`` as a layer count (``None`` when ``base`` names an image)."""
    from tagger.errors import UsageError

    if base is None:
        return None
    text = str(base).strip()
    if not text.isdigit():
        return None
    count = int(text)
    if count > total:
        raise UsageError(f"--base {count} is more layers than the image has ({total})")
    return count


def from_engine(
    image: str,
    base: str | None,
    top: int,
    env: Mapping[str, str],
    progress: Progress,
) -> tuple[Analysis, str, dict[str, Any]]:
    from tagger.engine import Engine

    engine = Engine(env)
    # The save is asked for first: the engine exports the image before it sends a byte,
    # and the imports, the inspection and the base choice happen meanwhile. The stream is
    # read once as it arrives (no file): 1.38x a plain `docker save > /dev/null` with a
    # temporary file before, figures in benchmarks/README.md.
    with engine.save_stream(image) as pending:
        import dataclasses

        from tagger.image.analyze import analyze_save
        from tagger.image.base import choose_base, rootfs_layers

        doc = engine.inspect_image(image)  # exit 2 for a missing image, 6 for no engine
        diff_ids = rootfs_layers(doc) or []
        count = _base_count(base, len(diff_ids))
        if count is not None:
            base_layers, note = count, f"--base {count}"
        else:
            choice = choose_base(
                engine, image, diff_ids, from_=str(base) if base else None, option="--base"
            )
            base_layers, note = choice.layers, choice.source
        progress(f"saving {image} from the engine")
        result = analyze_save(pending.stream(), base_layers=base_layers, top=top, progress=progress)
    extra = {"source": "engine", "id": str(doc.get("Id", ""))}
    return dataclasses.replace(result, image=image), note, extra


def from_registry(
    image: str,
    base: str | None,
    top: int,
    platform: Platform | None,
    env: Mapping[str, str],
    insecure: Sequence[str],
    ca_file: str | None,
    progress: Progress,
) -> tuple[Analysis, str, dict[str, Any]]:
    import dataclasses

    from tagger.image.analyze import analyze
    from tagger.image.remote import RemoteImage
    from tagger.registry.connect import open_client
    from tagger.registry.reference import Reference

    ref = Reference.parse(image)
    client, _credentials = open_client(ref, env, insecure=insecure, ca_file=ca_file)
    progress(f"reading {ref} from {ref.registry}")
    source = RemoteImage(client, ref, platform=platform)
    total = len(source.layers)
    count = _base_count(base, total)
    if count is not None:
        base_layers, note = count, f"--base {count}"
    elif base:
        base_layers = registry_base(client, ref, base, source, platform, env, insecure, ca_file)
        note = f"--base {base}"
    else:
        # dive's rule without an engine to compare with: the bottom layer is the base.
        base_layers, note = min(1, total), "the bottom layer (no engine to compare with)"
    # Four layers at once: the registry answers as fast as it is asked, and one layer's
    # gunzip and digest (outside the GIL) overlap another's download (benchmarks/README.md).
    with source.layer_errors():
        result = analyze(
            source, base_layers=base_layers, top=top, progress=progress, workers=LAYER_WORKERS
        )
    extra = {"source": "registry", "digest": source.digest}
    return dataclasses.replace(result, image=image), note, extra


def registry_base(
    client: RegistryClient,
    ref: Reference,
    base: str,
    source: Any,
    platform: Platform | None,
    env: Mapping[str, str],
    insecure: Sequence[str],
    ca_file: str | None,
) -> int:
    """The layer count of ``base`` (an image in a registry), which must be a prefix.

    A multi-platform base is read for the same platform as the image: comparing an arm64
    image with an amd64 base would never find the prefix."""
    from tagger.errors import ImageNotFoundError, NotFound, UsageError
    from tagger.image.archive import diff_ids
    from tagger.registry.connect import open_client
    from tagger.registry.reference import Reference

    base_ref = Reference.parse(base)
    if base_ref.registry != ref.registry:
        client, _ = open_client(base_ref, env, insecure=insecure, ca_file=ca_file)
    try:
        config = client.image_config(
            base_ref.repository, base_ref.digest or base_ref.tag or "latest", platform
        )
    except NotFound:
        raise ImageNotFoundError(f"the registry has no image {base} (--base)") from None
    layers = diff_ids(config)
    mine = [layer.diff_id for layer in source.layers]
    if not layers or mine[: len(layers)] != layers:
        raise UsageError(f"{base} is not a base image of {ref}: its layers are not a prefix")
    return len(layers)
