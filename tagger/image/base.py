"""Which bottom layers of an image are its base image's, for squash and analyze.

:func:`longest_shared_prefix` and :func:`layers_to_keep` are pure; :func:`choose_base` asks
the engine (``tagger.engine``) about local images. The rules (README, ``imgtag squash``):

1. ``--all``: no base, every layer is the image's own;
2. ``--from N``: the top N layers are the image's own (docker-squash's ``-f N``);
3. ``--from IMAGE``: that image's layers, which must be a prefix of this image's;
4. the FROM image, when the caller knows it (build-push reads it from the Dockerfile) and
   the engine has it; a known ``FROM scratch`` means no base, every layer is its own;
5. else the longest layer prefix this image shares with another local image (shorter
   than the image itself: an image that shares *all* its layers is a tag of it, not a base);
6. else none: no local image shares its bottom layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tagger.errors import ImageNotFoundError, UsageError

if TYPE_CHECKING:
    from tagger.engine import Engine


@dataclass(frozen=True, slots=True)
class BaseChoice:
    """``layers`` bottom layers belong to the base; ``source`` says how that was decided."""

    layers: int
    source: str


def longest_shared_prefix(
    target: Sequence[str], candidates: Mapping[str, Sequence[str]]
) -> tuple[int, str | None]:
    """The longest proper prefix of ``target`` that is a whole candidate's layer list.

    Returns ``(count, name)``; ``(0, None)`` when no candidate is a base of ``target``.
    A candidate with the same layers as ``target`` (another tag of it) or with layers that
    diverge is not a base. Ties go to the first name in sorted order, for stable output.

    >>> longest_shared_prefix(["a", "b", "c"], {"base": ["a"], "mid": ["a", "b"], "x": ["z"]})
    (2, 'mid')
    >>> longest_shared_prefix(["a", "b"], {"same": ["a", "b"], "other": ["a", "c"]})
    (0, None)
    >>> longest_shared_prefix(["a"], {})
    (0, None)
    """
    best, best_name = 0, None
    for name in sorted(candidates):
        layers = list(candidates[name])
        fits = 0 < len(layers) < len(target) and list(target[: len(layers)]) == layers
        if fits and len(layers) > best:
            best, best_name = len(layers), name
    return best, best_name


def layers_to_keep(total: int, from_: str) -> int:
    """For ``--from N``: how many bottom layers stay when the top ``N`` are squashed.

    >>> layers_to_keep(5, "2")
    3
    >>> layers_to_keep(5, "9")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: --from 9 asks for more layers than the image has (5)
    """
    count = int(from_)
    if count < 1:
        raise UsageError(f"--from {from_} must be at least 1 (the number of layers to squash)")
    if count > total:
        raise UsageError(f"--from {from_} asks for more layers than the image has ({total})")
    return total - count


def rootfs_layers(doc: Mapping[str, Any]) -> list[str] | None:
    """The diff_ids of an engine's ``docker image inspect`` document, bottom first;
    ``None`` when the document has none.

    >>> rootfs_layers({"RootFS": {"Type": "layers", "Layers": ["sha256:a", "sha256:b"]}})
    ['sha256:a', 'sha256:b']
    >>> rootfs_layers({}) is None
    True
    """
    rootfs = doc.get("RootFS")
    layers = rootfs.get("Layers") if isinstance(rootfs, dict) else None
    return [str(x) for x in layers] if isinstance(layers, list) else None


def _layers(doc: Mapping[str, Any]) -> list[str]:
    return rootfs_layers(doc) or []


def choose_base(
    engine: Engine,
    image: str,
    target_layers: Sequence[str],
    *,
    from_: str | None = None,
    all_layers: bool = False,
    known_base: str | None = None,
    option: str = "--from",
) -> BaseChoice:
    """Decide the base of ``image`` (whose diff_ids are ``target_layers``); see the module
    docstring for the order of the rules. ``option`` names the caller's option for
    ``from_`` in the choice's ``source`` (analyze calls it ``--base``)."""
    total = len(target_layers)
    if all_layers:
        return BaseChoice(0, "--all")
    if from_ is not None and from_.isdigit():
        return BaseChoice(layers_to_keep(total, from_), f"--from {from_}")
    if from_ is not None:
        base = _layers(engine.inspect_image(from_))
        if not base or list(target_layers[: len(base)]) != base or len(base) > total:
            raise UsageError(f"{from_} is not a base image of {image}: its layers are not a prefix")
        return BaseChoice(len(base), f"{option} {from_}")
    if known_base and known_base != "scratch":
        try:
            base = _layers(engine.inspect_image(known_base))
        except ImageNotFoundError:
            base = []
        if base and list(target_layers[: len(base)]) == base and len(base) <= total:
            return BaseChoice(len(base), f"FROM {known_base}")
    if known_base == "scratch":
        return BaseChoice(0, "FROM scratch")
    candidates: dict[str, list[str]] = {}
    for summary in engine.images():
        image_id = str(summary.get("Id", ""))
        tags = [t for t in summary.get("RepoTags") or [] if t and t != "<none>:<none>"]
        if not tags:
            continue  # dangling build cache: not an image anyone would call a base
        layers = _layers(engine.inspect_image(image_id))
        if 0 < len(layers) < total:
            candidates[tags[0]] = layers
    count, name = longest_shared_prefix(target_layers, candidates)
    if name is None:
        return BaseChoice(0, "no local image shares its bottom layers")
    return BaseChoice(count, f"shares its bottom layers with {name}")
