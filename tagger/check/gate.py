"""``build-push --check``: the image just built is checked before the final tag is written.
Does I/O through what it is handed (an engine, or a way to read the image's config).

With an engine (the docker and buildkit builders leave the image in it) every check runs
as ``imgtag check`` runs it. Without one (buildah) only what the image's config tells can
be judged: CHK003, CHK004, CHK005 and a metadata test; CHK001, CHK002 and the command and
file tests are skipped with a line that says so, and ``--check=strict`` makes a skipped
check a failure. A failure is a :class:`~tagger.errors.PolicyError` (exit 1), raised
before the push: the publisher then releases its claim and tags nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tagger.check import structure as st
from tagger.check.results import Report, Verdict
from tagger.check.settings import CheckSettings
from tagger.errors import PolicyError

if TYPE_CHECKING:
    from tagger.engine import Engine
    from tagger.lifecycle import Stop

NO_ENGINE = "skipped: the {builder} builder leaves no image in a Docker engine to run"


def check_built(
    image: str,
    settings: CheckSettings,
    *,
    strict: bool,
    builder: str,
    log: Callable[[str], None],
    engine: Engine | None = None,
    config_of: Callable[[], Mapping[str, Any] | None] | None = None,
    stop: Stop | None = None,
) -> Report:
    """Check ``image`` (an engine's image ID, or the builder's) and log one line per check;
    raise :class:`PolicyError` when one fails (or, with ``strict``, is skipped)."""
    from tagger.check.run import check_image, skipped_runtime
    from tagger.check.static import ImageFacts

    structure = st.load(settings.config) if settings.config else None
    if engine is not None:
        report = check_image(engine, image, settings, structure, stop=stop, progress=log)
    else:
        facts = ImageFacts.from_config(config_of() if config_of else None)
        why = NO_ENGINE.format(builder=builder)
        report = Report(image, image, skipped_runtime(facts, settings, structure, why))
    for r in report.results:
        first = r.details[0] if r.details else ""
        log(f"check: {r.id}: {r.verdict.value}" + (f": {first}" if first else ""))
    failing = report.failures
    skipped = [
        r
        for r in report.results
        if r.verdict is Verdict.SKIP and not r.details[0].startswith("ignored")
    ]
    if strict and skipped:
        ids = ", ".join(r.id for r in skipped)
        raise PolicyError(
            f"--check=strict: {len(skipped)} check(s) could not run with the {builder} "
            f"builder ({ids}); use a builder with an engine, or --check without strict"
        )
    if failing:
        ids = ", ".join(r.id for r in failing)
        raise PolicyError(
            f"the image failed {len(failing)} check(s) ({ids}); nothing was pushed "
            "(see 'imgtag check', --ignore, [tool.imgtag.check])"
        )
    return report
