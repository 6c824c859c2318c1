"""The error tree and the exit-code table: the one place that says which failure exits how.

Every failure imgtag expects is an :class:`ImgtagError` subclass carrying its
:class:`ExitCode`; the command layer raises them and ``tagger.cli.main`` turns them
into one sentence on stderr and the exit code (``docs/exit-codes.md``). No I/O here.

Messages may quote things users typed or registries answered, so every text that
leaves the process goes through :func:`redact` first: credentials never reach output.
"""

from __future__ import annotations

import re
from enum import IntEnum
from urllib.parse import quote, quote_plus


class ExitCode(IntEnum):
    """imgtag's exit codes, exactly as the table in ``docs/exit-codes.md``."""

    OK = 0
    POLICY = 1  # lint findings, analyze thresholds at or above the bar, a failed check
    USAGE = 2  # unknown option, invalid reference, config or file
    REFUSED = 3  # the tag exists, an overwrite was detected, the work tree is dirty
    GIT = 4  # no version can be derived
    REGISTRY = 5  # unreachable, auth denied, rate limited, a prune action failed
    ENGINE = 6  # Docker engine unreachable, build or push failed
    INTERNAL = 70  # a bug
    # A signal stopped the run after it cleaned up: 128 + the signal's number, as shells
    # report a process killed by it (SIGHUP 1, SIGINT 2, SIGTERM 15).
    HANGUP = 129
    INTERRUPTED = 130
    TERMINATED = 143


class ImgtagError(Exception):
    """Base of every expected failure. ``str(err)`` is the one sentence users see."""

    exit_code: ExitCode = ExitCode.INTERNAL


class PolicyError(ImgtagError):
    """A policy bar was crossed (lint findings, analyze thresholds)."""

    exit_code = ExitCode.POLICY


class UsageError(ImgtagError):
    """Bad input: an option, a value, a reference, a config file."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """The configuration file or an ``IMGTAG_*`` variable is wrong."""


class RefusedError(ImgtagError):
    """imgtag refused to publish: the tag exists, an overwrite, a dirty work tree."""

    exit_code = ExitCode.REFUSED


class DirtyTreeError(RefusedError):
    """The work tree has uncommitted changes, so the revision label would lie."""


class GitError(ImgtagError):
    """No version can be derived from the repository."""

    exit_code = ExitCode.GIT


class NotARepositoryError(GitError):
    """The path is not inside a git work tree."""


class NoCommitsError(GitError):
    """The repository has no commit yet."""


class ShallowCloneError(GitError):
    """The clone is shallow and its history hides the tags the version depends on."""


class RegistryError(ImgtagError):
    """The registry was unreachable, refused us, or an action against it failed."""

    exit_code = ExitCode.REGISTRY


class EngineError(ImgtagError):
    """The Docker engine was unreachable, or a build or push failed."""

    exit_code = ExitCode.ENGINE


class ImageNotFoundError(UsageError):
    """The Docker engine has no image of that name (bad input to analyze or squash)."""


class ImageFormatError(UsageError):
    """An image archive or manifest imgtag cannot read: malformed, truncated, or a layer
    compression it does not support."""


class RegistryUnreachable(RegistryError):
    """No answer from the registry: DNS, connection refused or reset, TLS, timeout."""


class AuthenticationError(RegistryError):
    """The registry (or its token service) rejected the credentials (401)."""


class AccessDenied(RegistryError):
    """Authenticated, but not allowed to do this (403, or 401 for a scope we lack)."""


class RateLimited(RegistryError):
    """Still 429 after the bounded retries."""


class NotFound(RegistryError):
    """The registry has no such repository, manifest, blob or tag (404).

    Callers that expect absence (an existence check) catch this; elsewhere it is exit 5.
    """


class Protected(RegistryError):
    """The registry refuses to delete this by a rule or lock of its own (GitLab's protected
    tags, Harbor's immutable-tag rules, ACR's ``deleteEnabled``/``writeEnabled`` false,
    Artifact Registry's dangling-tag rule): prune reports a skip in the registry's words,
    not a failure."""


class Unsupported(RegistryError):
    """The registry does not support the operation (405, or 400 UNSUPPORTED/DIGEST_INVALID
    for a DELETE by tag on Distribution)."""


class Interrupted(ImgtagError):
    """A signal (SIGINT, SIGTERM, SIGHUP) stopped the run; it cleaned up first."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.INTERRUPTED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class TagExistsError(RefusedError):
    """The tag already exists in the registry; imgtag never overwrites it."""


class OverwriteDetected(RefusedError):
    """After pushing, the tag points at another digest than the one just pushed."""


class ImmutableTag(RefusedError):
    """The registry itself refused to write a tag because its tags are immutable there
    (ECR ``ImageTagAlreadyExistsException``/``TAG_INVALID``, Harbor 412 ``PRECONDITION``,
    GitLab's immutable rules, Docker Hub's 403, Artifact Registry's immutable tags). Its
    message carries the registry's own words. Raised by the registry layer
    (``tagger.registry.immutable`` recognises the answer), for build-push and promote alike.
    """


# --- redaction -------------------------------------------------------------------------

# Secrets learned at run time (passwords, tokens read from docker config or helpers).
_SECRETS: set[str] = set()

# Patterns that look like credentials wherever they come from: userinfo in URLs
# (``https://user:pass@host`` and ``https://TOKEN@host``), Authorization headers, and
# key=value / "key": "value" pairs named like secrets.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@"), r"\1***@"),
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*)(basic|bearer)\s+[^\s,'\"]+"), r"\1\2 ***"),
    # An echoed header value without its name: base64 or a JWT, so at least one digit,
    # "=", "+" or "/" ("basic authentication" is left alone).
    (
        re.compile(r"(?i)\b(basic|bearer)\s+(?=[A-Za-z._~-]*[0-9+/=])[A-Za-z0-9._~+/=-]{12,}"),
        r"\1 ***",
    ),
    (
        re.compile(
            r"(?i)([\"']?\b(?:password|passwd|secret|token|access_token|refresh_token|"
            r"identitytoken|registrytoken|auth)[\"']?\s*[:=]\s*[\"']?)([^\s,'\"}&]+)"
        ),
        r"\1***",
    ),
)


def _forms(value: str) -> set[str]:
    """The ways a secret can show up in text: as it is, stripped, ``repr``'d (an
    exception's message quotes a header value with ``\\n`` escaped), JSON-escaped, and
    percent-encoded (a query string)."""
    import json  # here: only a registered secret needs it (`imgtag next` has none)

    forms = {value, value.strip(), repr(value)[1:-1], json.dumps(value)[1:-1]}
    forms |= {json.dumps(value, ensure_ascii=False)[1:-1], quote(value, safe=""), quote_plus(value)}
    return forms


def register_secret(value: str | None) -> None:
    """Remember a secret so that :func:`redact` masks it in every later message, in each
    form it can take in a message (see :func:`_forms`).

    >>> register_secret("hunter2-password")
    >>> redact("login failed for hunter2-password")
    'login failed for ***'
    >>> register_secret("tok-with-newline\\n")
    >>> redact("Invalid header value b'Bearer tok-with-newline\\\\n'")
    "Invalid header value b'Bearer ***'"
    """
    if not value:
        return
    # Very short values would mask ordinary words; they are caught by the patterns.
    _SECRETS.update(form for form in _forms(value) if len(form) >= 4)


def escape_control(text: str, *, keep_newlines: bool = True) -> str:
    """``text`` with control characters (ESC, CR, BEL ...) shown escaped, as Python
    writes them: registry data must not drive the terminal. Newlines stay when asked.

    >>> escape_control("a\\x1b[2Jb\\rc\\nd")
    'a\\\\x1b[2Jb\\\\rc\\nd'
    """
    out = []
    for ch in text:
        if (ch == "\n" and keep_newlines) or ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    return "".join(out)


def redact(text: str) -> str:
    """Mask credentials in ``text``: registered secrets, URL userinfo, auth headers.

    >>> redact("GET https://bob:s3cret@registry.example/v2/")
    'GET https://***@registry.example/v2/'
    >>> redact("GET https://ghp_abc123token@registry.example/v2/")
    'GET https://***@registry.example/v2/'
    >>> redact("Authorization: Bearer eyJhbGciOi.x.y")
    'Authorization: Bearer ***'
    >>> redact('{"password": "pa55"}')
    '{"password": "***"}'
    """
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class InvalidReferenceError(UsageError):
    """An image reference (or an IMAGE repository) does not follow the reference grammar.

    Named so as not to shadow the builtin ``ReferenceError``.
    """
