"""Registry credentials, found exactly where and how the docker CLI finds them. Does I/O.

Reads the docker config file and runs credential helpers (through ``tagger.proc``); it
never talks to a registry. What a user's ``docker push`` would authenticate with is what
``imgtag`` authenticates with:

- the file: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``
  (https://github.com/docker/cli/blob/master/cli/config/config.go);
- the store: ``credHelpers[host]``, else ``credsStore``, else the file's ``auths``
  (``GetCredentialsStore`` and ``GetAuthConfig`` in
  https://github.com/docker/cli/blob/master/cli/config/configfile/file.go);
- ``auths`` keys matched as the CLI's file store does (an exact key, else a key that is
  the same host once scheme and path are stripped: ``ConvertToHostname`` in
  https://github.com/docker/cli/blob/master/cli/config/credentials/file_store.go);
- helpers spoken to as https://github.com/docker/docker-credential-helpers does
  (``client.Get``: ``docker-credential-NAME get``, the server URL on stdin, JSON out).

Every secret is handed to :func:`tagger.errors.register_secret` the moment it is read,
and no object here shows one in its ``repr`` or in an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagger.errors import ConfigError, RegistryError, redact, register_secret
from tagger.proc import ProgramNotFound, Result, Runner
from tagger.registry.reference import HUB_HOSTS

# The key `docker login` stores Docker Hub credentials under, and the server URL the CLI
# hands to helpers for Hub (`registry.IndexServer` in docker/docker).
DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"

# A helper that hangs (a keychain waiting for a GUI prompt on a headless CI runner)
# must not hang the build.
HELPER_TIMEOUT_SECONDS = 30.0

# docker-credential-helpers' `errCredentialsNotFoundMessage`. The client compares the
# helper's whole stdout with it; helpers written in other languages word it slightly
# differently or print it on stderr, so a case-insensitive substring on either is used.
_NOT_FOUND = "credentials not found"
# Helpers answer with this user name when the secret is an identity (refresh) token
# (`tokenUsername` in docker/cli's native store).
_TOKEN_USERNAME = "<token>"


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """What a registry login needs. Secrets never show in ``repr``/``str``.

    - ``username``/``password``: HTTP Basic, or Basic to the token service.
    - ``identity_token``: an OAuth2 refresh token, exchanged at the token realm
      (``grant_type=refresh_token``), as the CLI does after ``docker login`` to some registries.
    - ``registry_token``: a bearer token sent to the registry as it is.

    >>> c = Credentials(username="bob", password="hunter2-pass")
    >>> c
    Credentials(username='bob', password=***, identity_token=None, registry_token=None)
    >>> c.basic_auth()
    ('bob', 'hunter2-pass')
    >>> c.auth_config() == {"username": "bob", "password": "hunter2-pass"}
    True
    """

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    registry_token: str | None = None

    def __post_init__(self) -> None:
        # Registered the moment they exist, whichever way they were read (config file,
        # helper, a test): the Basic header's base64 too, which an error body may echo.
        # The user name alone is not a secret (docker prints it), and registering it would
        # mask ordinary words that happen to be user names.
        for secret in (self.password, self.identity_token, self.registry_token):
            register_secret(secret)
        if (header := self.basic_header()) is not None:
            register_secret(header.partition(" ")[2])

    def __repr__(self) -> str:
        def shown(value: str | None) -> str:
            return "None" if value is None else "***"

        return (
            f"Credentials(username={self.username!r}, password={shown(self.password)}, "
            f"identity_token={shown(self.identity_token)}, "
            f"registry_token={shown(self.registry_token)})"
        )

    @property
    def is_empty(self) -> bool:
        """No user name and no secret: the same as no credentials at all."""
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def basic_auth(self) -> tuple[str, str] | None:
        """``(username, password)`` for HTTP Basic, or ``None`` without both."""
        if self.username and self.password is not None:
            return self.username, self.password
        return None

    def basic_header(self) -> str | None:
        """The ``Authorization`` value for HTTP Basic, UTF-8 as the docker CLI sends it
        (``requests`` would encode Latin-1 and fail on a password with ``€``).

        >>> Credentials(username="bob", password="p€ss").basic_header()
        'Basic Ym9iOnDigqxzcw=='
        """
        basic = self.basic_auth()
        if basic is None:
            return None
        return "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode("ascii")

    def auth_config(self) -> dict[str, str]:
        """The engine's ``AuthConfig`` for the docker SDK's ``push(auth_config=...)``.

        Every field that is set goes in, under the engine API's JSON names, as the CLI
        sends them (the engine prefers the identity token to the password when both are
        there, so that choice stays the engine's, as with ``docker push``).

        >>> Credentials(identity_token="refresh-me").auth_config()
        {'identitytoken': 'refresh-me'}
        """
        fields = {
            "username": self.username,
            "password": self.password,
            "identitytoken": self.identity_token,
            "registrytoken": self.registry_token,
        }
        return {k: v for k, v in fields.items() if v is not None}


def _field(obj: Mapping[str, Any], name: str) -> Any:
    """``obj[name]`` as Go's encoding/json finds a struct field: exact, else ignoring case.

    >>> _field({"Auths": {}}, "auths"), _field({"x": 1}, "auths")
    ({}, None)
    """
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if key.lower() == lowered:
            return value
    return None


def convert_to_hostname(key: str) -> str:
    """The host[:port] of a config key, as the CLI's ``ConvertToHostname``: any scheme
    and any path (``/v1/``) are stripped, so old keys written as URLs still match.

    >>> [convert_to_hostname(k) for k in ("ghcr.io", "https://ghcr.io",
    ...     "http://localhost:5000/v1/", "https://index.docker.io/v1/", "[::1]:5000/v2")]
    ['ghcr.io', 'ghcr.io', 'localhost:5000', 'index.docker.io', '[::1]:5000']
    """
    stripped = key
    if "://" in stripped:
        stripped = stripped.split("://", 1)[1]
        # A URL's user info ("https://user@host") is no part of the host.
        authority = stripped.partition("/")[0]
        stripped = authority.rpartition("@")[2]
    return stripped.partition("/")[0]


def _lookup_key(registry: str) -> str:
    """The key the CLI looks credentials up with: Hub's server URL, else the host.

    >>> _lookup_key("docker.io"), _lookup_key("registry-1.docker.io"), _lookup_key("ghcr.io")
    ('https://index.docker.io/v1/', 'https://index.docker.io/v1/', 'ghcr.io')
    """
    host = convert_to_hostname(registry)
    if registry == DOCKER_HUB_SERVER_URL or host in HUB_HOSTS:
        return DOCKER_HUB_SERVER_URL
    return host


def _match(keys: list[str], lookup: str, *, exact_only: bool) -> str | None:
    """The config key that holds ``lookup``'s entry, or ``None``.

    An exact key first; for Docker Hub also any key naming one of Hub's hosts
    (``docker.io``, ``index.docker.io``, ``registry-1.docker.io``, with or without
    scheme); then, unless ``exact_only``, the first key whose host is ``lookup``.
    """
    if lookup in keys:
        return lookup
    if lookup == DOCKER_HUB_SERVER_URL:
        for key in keys:
            if convert_to_hostname(key) in HUB_HOSTS:
                return key
        return None
    if exact_only:
        return None
    for key in keys:
        if convert_to_hostname(key) == lookup:
            return key
    return None


def _config_path(env: Mapping[str, str]) -> Path | None:
    if directory := env.get("DOCKER_CONFIG"):
        return Path(directory) / "config.json"
    if home := env.get("HOME"):
        return Path(home) / ".docker" / "config.json"
    return None


def _string(value: Any, path: Path, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"{path}: {where} must be a string; fix the docker config file")


def _decode_auth(value: str, path: Path, key: str) -> tuple[str, str]:
    """``auth`` is base64 of ``user:password``; the password may itself contain ``:``.

    As the CLI's ``decodeAuth``: cut at the first ``:``, an empty user name is an error,
    NUL padding is trimmed from the password.
    """
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = None
    if decoded is None or ":" not in decoded or decoded.startswith(":"):
        # Name the key, never the value: it is a password.
        raise ConfigError(
            f'{path}: the "auth" of "{key}" is not base64 of user:password; '
            f"log in again (docker login {convert_to_hostname(key)})"
        )
    username, _, password = decoded.partition(":")
    return username, password.strip("\x00")


def _parse_auths(raw: Any, path: Path) -> dict[str, Credentials]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f'{path}: "auths" must be an object; fix the docker config file')
    auths: dict[str, Credentials] = {}
    for key, entry in raw.items():
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise ConfigError(f'{path}: auths["{key}"] must be an object; fix the file')
        values = {
            name: _string(_field(entry, name), path, f'auths["{key}"].{name}')
            for name in ("auth", "username", "password", "identitytoken", "registrytoken")
        }
        # Register first: nothing below may quote a secret, but a later bug might.
        for name in ("auth", "password", "identitytoken", "registrytoken"):
            register_secret(values[name])
        # Tokens go into HTTP headers as they are: surrounding white space (a file written
        # with `echo`) is dropped, anything else that is no visible ASCII is refused here,
        # naming the key, instead of an HTTP library quoting the header.
        for name in ("identitytoken", "registrytoken"):
            if (token := values[name]) is not None:
                values[name] = _token_value(token.strip(), path, f'auths["{key}"].{name}')
        username, password = values["username"], values["password"]
        if values["auth"]:
            # The CLI decodes `auth` on load and lets it win over username/password.
            username, password = _decode_auth(values["auth"], path, key)
            register_secret(password)
        auths[key] = Credentials(
            username=username or None,
            password=password or None,
            identity_token=values["identitytoken"] or None,
            registry_token=values["registrytoken"] or None,
        )
    return auths


_VISIBLE_ASCII_RE = re.compile(r"[\x21-\x7e]*\Z")
# Helper names become a program name `docker-credential-NAME` (never a shell word): no
# path separators, no NUL, nothing a program name on PATH does not have.
_HELPER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\Z")


def _token_value(value: str, path: Path, where: str) -> str:
    if _VISIBLE_ASCII_RE.match(value) is None:
        raise ConfigError(
            f"{path}: {where} has characters a token cannot have (white space or control "
            "characters inside, or non-ASCII); log in again"
        )
    return value


def _helper_name(value: str, path: Path, where: str) -> str:
    if value and _HELPER_NAME_RE.match(value) is None:
        raise ConfigError(
            f"{path}: {where} is not a credential helper name ({value[:40]!r}): "
            "letters, digits, '.', '_', '+' and '-' only; fix the docker config file"
        )
    return value


def _parse_helpers(raw: Any, path: Path) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError(
            f'{path}: "credHelpers" must map registries to helper names; fix the file'
        )
    return {k: _helper_name(v, path, f'credHelpers["{k}"]') for k, v in raw.items()}


def _first_line(text: str, limit: int = 200) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = "".join(c for c in line if c.isprintable())
    return redact(line[:limit])


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class DockerConfig:
    """The credential parts of a docker config file, and lookups in them.

    Build it with :meth:`load`. ``auths`` holds decoded entries by their key as written.
    """

    path: Path | None = None
    auths: Mapping[str, Credentials] = field(default_factory=dict)
    cred_helpers: Mapping[str, str] = field(default_factory=dict)
    creds_store: str | None = None
    runner: Runner | None = None
    # Helpers can be slow (cloud CLIs); a run asks for the same registry many times.
    _cache: dict[str, Credentials | None] = field(default_factory=dict, init=False)

    def __repr__(self) -> str:
        return (
            f"DockerConfig(path={str(self.path) if self.path else None!r}, "
            f"auths={sorted(self.auths)!r}, cred_helpers={dict(self.cred_helpers)!r}, "
            f"creds_store={self.creds_store!r})"
        )

    @classmethod
    def load(cls, env: Mapping[str, str], *, runner: Runner | None = None) -> DockerConfig:
        """Read ``$DOCKER_CONFIG/config.json``, else ``$HOME/.docker/config.json``.

        A missing (or empty) file is an empty config, as for the CLI. A file that cannot
        be read or is not the expected JSON is a :class:`~tagger.errors.ConfigError`
        naming the file, never quoting it (it holds passwords).
        Helpers run through ``runner`` (default: a :class:`~tagger.proc.Runner` on the
        process environment, which is where the CLI runs them too).
        """
        path = _config_path(env)
        if path is None:
            return cls(runner=runner)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path=path, runner=runner)
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not UTF-8 text; fix or remove it") from None
        except OSError as exc:
            raise ConfigError(f"{path} cannot be read ({exc.strerror or exc}); fix it") from None
        if not text.strip():
            # The CLI's decoder stops at EOF without an error: an empty file is no config.
            return cls(path=path, runner=runner)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            # The position helps; the message of a JSONDecodeError never quotes the text,
            # and `from None` keeps the exception (whose .doc is the file) off tracebacks.
            raise ConfigError(
                f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}); "
                "fix or remove it"
            ) from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a JSON object; fix or remove it")
        auths = _parse_auths(_field(data, "auths"), path)
        helpers = _parse_helpers(_field(data, "credHelpers"), path)
        store = _string(_field(data, "credsStore"), path, '"credsStore"')
        store = _helper_name(store, path, '"credsStore"') if store else store
        return cls(
            path=path, auths=auths, cred_helpers=helpers, creds_store=store or None, runner=runner
        )

    def credentials(self, registry: str) -> Credentials | None:
        """Credentials for ``registry`` (host[:port] as in a reference, e.g. ``docker.io``),
        or ``None`` when there are none (anonymous access).

        Order as the CLI: a ``credHelpers`` entry for the registry, else ``credsStore``,
        else ``auths``. A helper that is asked is the only answer: when it has nothing,
        the CLI does not fall back to ``auths`` and neither does this.
        """
        lookup = _lookup_key(registry)
        if lookup in self._cache:
            return self._cache[lookup]
        helper, source = self._helper_for(lookup)
        if helper:
            creds = self._from_helper(helper, source, lookup)
        else:
            key = _match(list(self.auths), lookup, exact_only=False)
            creds = self.auths[key] if key is not None else None
        if creds is not None and creds.is_empty:
            # `docker login` with a credsStore leaves `"auths": {"host": {}}` behind.
            creds = None
        self._cache[lookup] = creds
        return creds

    def _helper_for(self, lookup: str) -> tuple[str, str]:
        """The helper to ask, and where the config names it (for error messages).

        ``credHelpers`` keys match exactly, as in the CLI (no scheme stripping; only
        Hub's several names are accepted for Hub). An entry whose helper is ``""`` means
        "use the file" even when a ``credsStore`` is set: the CLI reads it that way.
        """
        key = _match(list(self.cred_helpers), lookup, exact_only=True)
        if key is not None:
            return self.cred_helpers[key], f'credHelpers["{key}"]'
        return self.creds_store or "", "credsStore"

    def _from_helper(self, helper: str, source: str, server_url: str) -> Credentials | None:
        program = f"docker-credential-{helper}"
        where = f"{source} in {self.path}" if self.path else source
        runner = self.runner or Runner()
        try:
            result = runner.run([program, "get"], input=server_url, timeout=HELPER_TIMEOUT_SECONDS)
        except ProgramNotFound:
            # The CLI fails here too ("exec: docker-credential-X: executable file not
            # found"). It is a configuration problem on this machine, not a registry
            # failure: retrying cannot help, installing the helper or editing the config
            # can, so it is exit 2 (ConfigError), not exit 5.
            raise ConfigError(
                f"{program} is not installed (named by {where}); "
                "install it or remove it from the docker config"
            ) from None
        except subprocess.TimeoutExpired:
            # `from None`: the TimeoutExpired carries whatever the helper printed.
            raise RegistryError(
                f"{program} did not answer within {HELPER_TIMEOUT_SECONDS:g} s "
                f"for {server_url}; is it waiting for a keychain prompt?"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"{program} (named by {where}) could not be run ({exc.strerror or exc})"
            ) from None
        if not result.ok:
            if _NOT_FOUND in result.stdout.lower() or _NOT_FOUND in result.stderr.lower():
                return None  # no credentials stored: anonymous, not an error
            raise RegistryError(self._failure(program, server_url, result.returncode, result))
        try:
            data = json.loads(result.stdout)
        except json.JSONDecodeError:
            data = None
        register_secret(result.stdout.strip())
        if isinstance(data, dict):
            secret, username = data.get("Secret"), data.get("Username")
            if isinstance(secret, str):
                register_secret(secret)
            if (secret is None or isinstance(secret, str)) and (
                username is None or isinstance(username, str)
            ):
                if username == _TOKEN_USERNAME:
                    return Credentials(identity_token=secret or None)
                return Credentials(username=username or None, password=secret or None)
        # Never quote the output: it is meant to hold a secret.
        raise RegistryError(
            f"{program} answered something that is not credentials JSON for {server_url}"
        )

    @staticmethod
    def _failure(program: str, server_url: str, code: int, result: Result) -> str:
        """One sentence about a failed helper, quoting at most one redacted line.

        Helpers built on docker-credential-helpers print their error on stdout, others
        on stderr. stderr is preferred; stdout only when it is not JSON (a helper that
        printed its answer and then failed must not leak the secret).
        """
        detail = _first_line(result.stderr)
        if not detail:
            out = result.stdout.strip()
            if out and not out.startswith(("{", "[")) and "secret" not in out.lower():
                detail = _first_line(out)
        sentence = f"{program} failed (exit {code}) to get credentials for {server_url}"
        return f"{sentence}: {detail}" if detail else sentence
