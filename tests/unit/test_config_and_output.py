"""Configuration files (validation, precedence) and the dotenv/JSON renderers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagger.config import Config, load
from tagger.errors import ConfigError
from tagger.output import to_dotenv


def _repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    return tmp_path


def test_no_file_is_empty(tmp_path: Path) -> None:
    assert load(_repo(tmp_path)).sections == {}
    assert load(tmp_path / "nowhere-a-repo").sections == {}


def test_dedicated_file_with_sections(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    (root / ".imgtag.toml").write_text(
        'bump = "minor"\ntag_prefix = "api/v"\nalias = "latest"\nbuild_arg = {A = "1"}\n'
        "[prune]\nkeep_last = 5\nkeep = ['^keep-']\n[lint]\nfail_on = 'warning'\n"
    )
    cfg = load(root / "sub" / "dir")  # found from below, at the root
    assert cfg.source == root / ".imgtag.toml"
    assert cfg.sections[""] == {
        "bump": "minor",
        "tag_prefix": "api/v",
        "alias": ["latest"],
        "build_arg": ["A=1"],
    }
    assert cfg.sections["prune"] == {"keep_last": 5, "keep": ["^keep-"]}
    assert cfg.sections["lint"] == {"fail_on": "warning"}


def test_pyproject_table_and_precedence_of_dedicated_file(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    (root / "pyproject.toml").write_text('[tool.imgtag]\ncounter = "commits"\n')
    assert load(root).sections[""] == {"counter": "commits"}
    (root / ".imgtag.toml").write_text('counter = "timestamp"\n')
    assert load(root).sections[""] == {"counter": "timestamp"}


def test_pyproject_without_table(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    (root / "pyproject.toml").write_text('[project]\nname = "imgtag-user"\n')
    assert load(root).sections == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('bumpp = "minor"\n', "unknown key bumpp"),
        ("[prune]\nkeep_lats = 3\n", "unknown key prune.keep_lats"),
        ("bump = 3\n", "bump must be one of patch, minor, major, none, auto"),
        ('counter = "nightly"\n', "counter must be one of"),
        ("[prune]\nkeep_last = -1\n", "keep_last must be a non-negative integer"),
        ("[prune]\nkeep_last = true\n", "keep_last must be a non-negative integer"),
        ("squash = 'yes'\n", "squash must be true or false"),
        ("alias = [1]\n", "alias must be a string or a list of strings"),
        ("bump = \n", "is not valid TOML"),
    ],
)
def test_bad_files_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    root = _repo(tmp_path)
    (root / ".imgtag.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(root)


def test_unknown_key_in_pyproject_names_the_table(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    (root / "pyproject.toml").write_text("[tool.imgtag]\nfoo = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key tool\.imgtag\.foo"):
        load(root)


def test_resolve_precedence() -> None:
    cfg = Config(None, {"": {"bump": "minor", "counter": "commits"}, "prune": {"keep_last": 3}})
    given = {"bump": "major", "counter": None, "tag_prefix": None}
    defaults = {"bump": "patch", "counter": "auto", "tag_prefix": None}
    assert cfg.resolve("", given, defaults) == {
        "bump": "major",  # given (option or env) wins
        "counter": "commits",  # then the file
        "tag_prefix": None,  # then the default
    }
    assert cfg.resolve("prune", {"keep_last": None}, {"keep_last": 10}) == {"keep_last": 3}


def test_dotenv_is_shell_safe() -> None:
    text = to_dotenv({"tag": "1.2.3-4", "base_tag": "v$(rm -rf ~)'x", "dirty": False})
    assert text.splitlines() == [
        "IMGTAG_TAG=1.2.3-4",
        "IMGTAG_BASE_TAG='v$(rm -rf ~)'\\''x'",
        "IMGTAG_DIRTY=false",
    ]


def test_the_config_knows_every_provider_and_no_other() -> None:
    from tagger.config import PROVIDER_NAMES
    from tagger.registry.connect import PROVIDERS

    assert sorted(PROVIDER_NAMES) == sorted(PROVIDERS)
