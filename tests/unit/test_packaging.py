"""pyproject.toml lists the packages explicitly (ci-templates/ is mapped into the wheel as
tagger.ci_templates): every subpackage of tagger/ must be in that list, or the wheel lacks it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_subpackage_is_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    inits = (ROOT / "tagger").rglob("__init__.py")
    on_disk = {".".join(init.parent.relative_to(ROOT).parts) for init in inits}
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - on_disk == {"tagger.ci_templates"}
    assert config["package-dir"]["tagger.ci_templates"] == "ci-templates"
