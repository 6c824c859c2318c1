"""Configuration from ``.imgtag.toml`` or ``[tool.imgtag]`` in ``pyproject.toml``.

Does I/O: reads one file at the repository root. Precedence is option > ``IMGTAG_*``
environment variable > file > default (``docs/configuration.md``); the command line
layer hands in what options and variables gave (``None`` where neither did) and
:meth:`Config.resolve` fills in the rest. Keys are the long option names with ``_``;
an unknown key or a value of the wrong kind is a :class:`ConfigError` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagger.errors import ConfigError

Validator = Callable[[Any], Any]


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("true or false")
    return value


def _nonneg_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError("a non-negative integer")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("a number")
    return float(value)


def _int_or_str(value: Any) -> int | str:
    # analyze's sizes ("20MiB" or 20971520) and bases ("3" layers or an image name).
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError("an integer or a string")
    return value


def _base(value: Any) -> int | str:
    # analyze's base: a count of layers (0 or more) or an image name.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError("a number of layers (0 or more) or an image name")
    if isinstance(value, int) and value < 0:
        raise TypeError("a number of layers (0 or more) or an image name")
    if isinstance(value, str) and not value.strip():
        raise TypeError("a number of layers (0 or more) or an image name")
    return value


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("a string or a list of strings")
    return list(value)


def _key_values(value: Any) -> list[str]:
    # build_arg / label: a table {K = "V"} or a list of "K=V" strings.
    if isinstance(value, dict):
        if not all(isinstance(v, str | int | float | bool) for v in value.values()):
            raise TypeError("a table of strings")
        return [f"{k}={v}" for k, v in value.items()]
    return _str_list(value)


#: The providers' names, as tagger.registry.connect.PROVIDERS has them (a unit test keeps
#: the two equal; the config does not import the registry layer).
PROVIDER_NAMES = ("oci", "ghcr", "dockerhub", "gitlab", "harbor", "ecr", "gar", "acr")


def _choice(*choices: str) -> Validator:
    def check(value: Any) -> str:
        # Case-insensitive, as the command line's choices are.
        if not isinstance(value, str) or value.lower() not in choices:
            raise TypeError("one of " + ", ".join(choices))
        return value.lower()

    return check


def _bool_or(word: str) -> Validator:
    def check(value: Any) -> bool | str:
        if isinstance(value, bool) or value == word:
            return value  # type: ignore[no-any-return]
        raise TypeError(f"true, false or {word!r}")

    return check


def _provenance(value: Any) -> str:
    # `provenance = false` (TOML's boolean) or "false", "min", "max".
    if value is False:
        return "false"
    if not isinstance(value, str) or value.lower() not in ("false", "min", "max"):
        raise TypeError("false, min or max")
    return value.lower()


# Section "" is the top level: `next` and `build-push` keys. Each sub-table is its own.
SCHEMA: Mapping[str, Mapping[str, Validator]] = {
    "": {
        "tag_prefix": _str,
        "bump": _choice("patch", "minor", "major", "none", "auto"),
        "counter": _choice("ci", "timestamp", "commits", "registry", "auto"),
        "initial_version": _str,
        "image": _str,
        "context": _str,
        "file": _str,
        "build_arg": _key_values,
        "target": _str,
        "label": _key_values,
        "alias": _str_list,
        "squash": _bool,
        "lint": _bool,
        "on_exists": _choice("fail", "skip"),
        "allow_dirty": _bool,
        # Seconds an unrenewed build-push claim stands (tagger.registry.markers); prune reads it
        # too, to tell stale claims from live ones.
        "claim_lease": _number,
        "builder": _choice("auto", "docker", "buildkit", "buildah"),
        "secret": _str_list,
        "platform": _str_list,
        "network": _str,
        # build-push --sign (tagger.build.signing): sign the digest before the final tag.
        "sign": _bool,
        "sign_key": _str,
        "sign_tlog": _bool,
        "cache_from": _str_list,
        "cache_to": _str_list,
        "no_cache": _bool,
        "pull": _bool,
        "provenance": _provenance,
        "annotation": _key_values,
        # How the registry deletes (tagger.registry.providers): build-push's claims and prune.
        "provider": _choice(*PROVIDER_NAMES),
    },
    "prune": {
        "keep_last": _nonneg_int,
        "keep_per_version": _nonneg_int,
        "keep_within": _str,
        "keep": _str_list,
        "match": _str,
        "max_delete": _nonneg_int,
        "concurrency": _nonneg_int,
        "provider": _choice(*PROVIDER_NAMES),
        "untagged": _bool,
        # Remove signatures and referrers whose subject is gone (kept by default).
        "orphans": _bool,
        "untagged_grace": _str,
        "keep_from": _str,
        "validate": _bool,
    },
    "lint": {
        "ignore": _str_list,
        "fail_on": _choice("error", "warning", "info", "none"),
        "hadolint": _bool,
    },
    "check": {
        "config": _str,
        "stop_timeout": _number,
        "user": _str,
        "writable": _str_list,
        "ignore": _str_list,
        # build-push's default: check the image before the final tag (true), and fail a
        # check that could not run ("strict").
        "build_push": _bool_or("strict"),
    },
    "analyze": {
        "lowest_efficiency": _number,
        "highest_wasted_bytes": _int_or_str,
        "highest_user_wasted_percent": _number,
        "top": _nonneg_int,
        "base": _base,
    },
}


@dataclass(frozen=True)
class Config:
    """Validated values from the configuration file, by section."""

    source: Path | None = None
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def value(self, key: str, section: str = "") -> Any:
        """The file's value of ``key`` (``None`` when the file does not set it).

        >>> Config(None, {"": {"claim_lease": 30}}).value("claim_lease"), Config().value("x")
        (30, None)
        """
        return self.sections.get(section, {}).get(key)

    def resolve(
        self, section: str, given: Mapping[str, Any], defaults: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge: a value given on the command line or in the environment (not ``None``)
        wins, then the file, then ``defaults``.

        >>> cfg = Config(None, {"": {"bump": "minor", "counter": "commits"}})
        >>> cfg.resolve("", {"bump": None, "counter": "ci"}, {"bump": "patch", "counter": "auto"})
        {'bump': 'minor', 'counter': 'ci'}
        """
        from_file = self.sections.get(section, {})
        merged: dict[str, Any] = {}
        for key in dict.fromkeys([*defaults, *given]):  # ordered, no duplicates
            value = given.get(key)
            if value is None:
                value = from_file.get(key, defaults.get(key))
            merged[key] = value
        return merged


def find_root(start: str | os.PathLike[str]) -> Path | None:
    """The nearest directory at or above ``start`` that holds ``.git`` (dir or file)."""
    path = Path(start).resolve()
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def load_section(path: str | os.PathLike[str], section: str) -> dict[str, Any]:
    """A file holding one section's keys (``prune --policy FILE``), validated: the keys at
    the top level, or under a single ``[section]`` table."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: no such file")
    table = _read_toml(file)
    if isinstance(table.get(section), dict) and len(table) == 1:
        table = table[section]
    return _validate_section(table, SCHEMA[section], file, "")


def load(start: str | os.PathLike[str]) -> Config:
    """Read the configuration at the repository root above ``start``.

    ``.imgtag.toml`` wins over ``pyproject.toml`` when both exist (they are not
    merged, as with ruff's ``ruff.toml``); no file is an empty configuration.
    """
    root = find_root(start)
    if root is None:
        return Config()
    dedicated = root / ".imgtag.toml"
    if dedicated.is_file():
        return Config(dedicated, _validate(_read_toml(dedicated), dedicated, ""))
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        # Cheap test before parsing: most pyproject files have no [tool.imgtag].
        if "imgtag" not in pyproject.read_text(encoding="utf-8", errors="replace"):
            return Config()
        tool = _read_toml(pyproject).get("tool", {})
        table = tool.get("imgtag") if isinstance(tool, dict) else None
        if table is None:
            return Config()
        return Config(pyproject, _validate(table, pyproject, "tool.imgtag."))
    return Config()


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # only when a file exists: keeps `imgtag next` lean

    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        # TOML is UTF-8 by definition; tomllib lets the decoding error through.
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}); TOML files must be UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def _validate(table: Any, path: Path, prefix: str) -> dict[str, dict[str, Any]]:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {prefix.rstrip('.')} must be a table")
    sections: dict[str, dict[str, Any]] = {"": {}}
    for key, value in table.items():
        if key in SCHEMA and key != "" and isinstance(value, dict):
            sections[key] = _validate_section(value, SCHEMA[key], path, f"{prefix}{key}.")
        else:
            sections[""].update(_validate_section({key: value}, SCHEMA[""], path, prefix))
    return sections


def _validate_section(
    table: dict[str, Any], schema: Mapping[str, Validator], path: Path, prefix: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        check = schema.get(key)
        if check is None:
            known = ", ".join(sorted(schema))
            raise ConfigError(f"{path}: unknown key {prefix}{key} (known keys: {known})")
        try:
            out[key] = check(value)
        except TypeError as exc:
            raise ConfigError(f"{path}: {prefix}{key} must be {exc}") from exc
    return out
