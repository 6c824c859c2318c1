"""Image references: parsing and Docker Hub normalisation. Pure, no I/O.

A :class:`Reference` is ``registry/repository[:tag][@digest]`` in its full form. Parsing
follows the grammar of the docker/distribution reference library, the one the docker
CLI, dockerd and containerd share:

- https://github.com/distribution/reference/blob/main/reference.go (grammar, ``Parse``)
- https://github.com/distribution/reference/blob/main/regexp.go (the regular expressions)
- https://github.com/distribution/reference/blob/main/normalize.go (``splitDockerDomain``)

so that ``imgtag`` accepts exactly the names ``docker push`` accepts and means the same
image by them: ``ubuntu`` is ``docker.io/library/ubuntu``, ``user/app`` is
``docker.io/user/app``, ``localhost:5000/app`` is on ``localhost:5000``.

Where this module differs from that library, on purpose:

- ``registry-1.docker.io`` (Hub's API host) is normalised to ``docker.io`` like
  ``index.docker.io``, so that credentials and comparisons see one Hub.
- An upper-case first component (``Foo/bar``) is an error. Since 2023 the library reads
  it as a registry host called ``Foo``; older versions (and every user we know of) meant
  a mistyped Hub namespace, and a clear error beats a push to a host that does not exist.
- The 255-character limit applies to the whole name ``registry/repository`` (the OCI
  distribution spec's client limit, and the library's before 2023), not to the path only.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from tagger.errors import InvalidReferenceError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
#: Hosts that all mean Docker Hub (references, credentials): `index.docker.io` is the legacy
#: "Docker Index" name the library normalises; `registry-1.docker.io` is where Hub's
#: registry API actually lives.
HUB_HOSTS = frozenset({DOCKER_HUB, "index.docker.io", DOCKER_HUB_API_HOST})
_OFFICIAL_PREFIX = "library/"

MAX_NAME_LENGTH = 255

# regexp.go, translated. Go's `\w` is ASCII-only, Python's is Unicode: spell it out.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT_RE = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*\Z")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN_RE = re.compile(rf"(?P<host>{_DOMAIN_NAME}|{_IPV6})(?::(?P<port>[0-9]+))?\Z")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DIGEST_RE = re.compile(
    r"(?P<algorithm>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*):(?P<hex>[0-9a-fA-F]{32,})\Z"
)
# A bare image ID: docker refuses it as a name (normalize.go, ParseNormalizedNamed).
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}\Z")

# go-digest registers these three; anything else the grammar allows is "unsupported".
# Their encoded part is lower-case hex of the hash's size
# (https://github.com/opencontainers/image-spec/blob/main/descriptor.md#registered-algorithms).
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_HEX_RES = {a: re.compile(rf"[0-9a-f]{{{n}}}\Z") for a, n in _DIGEST_HEX_LENGTHS.items()}


def _invalid(text: str, why: str, *, what: str = "image reference") -> InvalidReferenceError:
    return InvalidReferenceError(f'"{text}" is not a valid {what}: {why}')


def _split_domain(text: str) -> tuple[str, str]:
    """Split ``text`` into (registry, remainder) as ``splitDockerDomain`` does.

    The first ``/``-separated component is a registry iff it contains ``.`` or ``:``
    (a port, or an IPv6 address) or is ``localhost``; otherwise the name is on Docker
    Hub. A single component is always on Hub, even ``localhost:5000`` (that is the
    repository ``library/localhost`` at tag ``5000``, as in docker).

    >>> _split_domain("ubuntu:22.04")
    ('docker.io', 'library/ubuntu:22.04')
    >>> _split_domain("[::1]:5000/app")
    ('[::1]:5000', 'app')
    >>> _split_domain("index.docker.io/user/app")
    ('docker.io', 'user/app')
    """
    first, slash, rest = text.partition("/")
    if not slash:
        return DOCKER_HUB, _OFFICIAL_PREFIX + text
    if first == "localhost" or "." in first or ":" in first:
        domain, remainder = first, rest
    else:
        domain, remainder = DOCKER_HUB, text
    if domain in HUB_HOSTS:
        domain = DOCKER_HUB
        # "docker.io/ubuntu" is the official image, but only on Hub: "ghcr.io/ubuntu" stays.
        if "/" not in remainder.partition(":")[0].partition("@")[0]:
            remainder = _OFFICIAL_PREFIX + remainder
    return domain, remainder


def _check_domain(text: str, domain: str, what: str) -> None:
    m = _DOMAIN_RE.match(domain)
    if m is None:
        raise _invalid(text, f'"{domain}" is not a valid registry host[:port]', what=what)
    # The grammar allows any digits and any label length; a URL does not (RFC 3986 ports,
    # RFC 1035 labels). Said here, the user gets one sentence instead of an HTTP library's
    # error about a URL they never typed.
    port = m["port"]
    if port is not None and not (len(port) <= 5 and 1 <= int(port) <= 65535):
        raise _invalid(text, f"the port {port[:12]} is not between 1 and 65535", what=what)
    host = m["host"]
    if not host.startswith("["):
        if len(host) > 253:
            raise _invalid(text, "the registry host name is longer than 253 characters", what=what)
        if any(len(label) > 63 for label in host.split(".")):
            raise _invalid(
                text, "a label of the registry host name is longer than 63 characters", what=what
            )


def _check_path(text: str, path: str, what: str) -> None:
    if not path:
        raise _invalid(text, "the repository name is empty", what=what)
    if path != path.lower():
        raise _invalid(text, "repository names are lower-case", what=what)
    for component in path.split("/"):
        if not component:
            raise _invalid(text, "the repository name has an empty path component", what=what)
        if _PATH_COMPONENT_RE.match(component) is None:
            raise _invalid(
                text,
                f'the path component "{component}" must be lower-case letters and digits '
                "separated by one '.', one or two '_', or '-'s",
                what=what,
            )


def _check_tag(text: str, tag: str, what: str = "image reference") -> None:
    if _TAG_RE.match(tag) is None:
        raise _invalid(
            text,
            f'the tag "{tag}" must be 1 to 128 letters, digits, "_", "." or "-" '
            'and must not start with "." or "-"',
            what=what,
        )


def _check_digest(text: str, digest: str, what: str = "image reference") -> None:
    algorithm, colon, hexpart = digest.partition(":")
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is not None and colon:
        # go-digest accepts only lower-case hex of exactly the hash's length.
        if _DIGEST_HEX_RES[algorithm].match(hexpart) is None:
            raise _invalid(
                text, f"a {algorithm} digest is {expected} lower-case hex digits", what=what
            )
        return
    if _DIGEST_RE.match(digest) is None:
        raise _invalid(text, f'the digest "{digest}" is not of the form algorithm:hex', what=what)
    raise _invalid(
        text,
        f'the digest algorithm "{algorithm}" is not supported (sha256, sha384, sha512)',
        what=what,
    )


@dataclass(frozen=True, slots=True)
class Reference:
    """An image reference in full form: ``registry/repository[:tag][@digest]``.

    >>> r = Reference.parse("ubuntu:22.04")
    >>> r.registry, r.repository, r.tag, r.digest
    ('docker.io', 'library/ubuntu', '22.04', None)
    >>> str(r), r.name, r.api_host
    ('docker.io/library/ubuntu:22.04', 'docker.io/library/ubuntu', 'registry-1.docker.io')
    >>> str(Reference.parse("localhost:5000/team/app").with_tag("1.4.2-17"))
    'localhost:5000/team/app:1.4.2-17'
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse ``[registry/]path[:tag][@digest]`` as ``docker pull`` would.

        Raises :class:`~tagger.errors.InvalidReferenceError` (exit 2) with one sentence
        naming the input and what is wrong.

        >>> Reference.parse("user/app")
        Reference(registry='docker.io', repository='user/app', tag=None, digest=None)
        >>> Reference.parse("registry-1.docker.io/nginx").name
        'docker.io/library/nginx'
        >>> Reference.parse("[::1]:5000/app:v1").registry
        '[::1]:5000'
        >>> Reference.parse("Foo/bar")
        Traceback (most recent call last):
        ...
        tagger.errors.InvalidReferenceError: "Foo/bar" is not a valid image reference: \
repository names are lower-case
        """
        return cls._parse(text, "image reference")

    @classmethod
    def parse_repository(cls, text: str) -> Reference:
        """Parse build-push's IMAGE: ``[registry/]path`` without a tag or a digest.

        >>> str(Reference.parse_repository("ghcr.io/acme/api"))
        'ghcr.io/acme/api'
        >>> Reference.parse_repository("ghcr.io/acme/api:1.0")
        Traceback (most recent call last):
        ...
        tagger.errors.InvalidReferenceError: "ghcr.io/acme/api:1.0" is not a valid image \
repository: drop the tag ":1.0" (imgtag chooses the tag)
        """
        what = "image repository"
        ref = cls._parse(text, what)
        if ref.digest is not None:
            raise _invalid(text, f'drop the digest "@{ref.digest}"', what=what)
        if ref.tag is not None:
            if "/" not in text and ref.tag.isdigit():
                # `localhost:5000` or `registry.example.com:443` alone: docker reads a
                # single component as a Hub repository with a tag, the user meant a host.
                raise _invalid(
                    text,
                    f'it looks like a registry without a repository path (write e.g. "{text}/app")',
                    what=what,
                )
            raise _invalid(text, f'drop the tag ":{ref.tag}" (imgtag chooses the tag)', what=what)
        return ref

    @classmethod
    def _parse(cls, text: str, what: str) -> Reference:
        if not text:
            raise InvalidReferenceError(f"an empty string is not a valid {what}")
        if _IDENTIFIER_RE.match(text):
            raise _invalid(text, "a 64-digit hex string is an image ID, not a name", what=what)
        if any(c.isspace() for c in text):
            raise _invalid(text, "it contains white space", what=what)
        domain, remainder = _split_domain(text)
        if domain != DOCKER_HUB:
            _check_domain(text, domain, what)
        # The path has neither ":" nor "@", a tag has neither, a digest has one ":" and
        # no "@": splitting on the first "@" and then the first ":" is the grammar's
        # `name [":" tag] ["@" digest]`, and it lets each error name the part that is wrong.
        name_tag, at, digest = remainder.partition("@")
        path, colon, tag = name_tag.partition(":")
        _check_path(text, path, what)
        if colon:
            _check_tag(text, tag, what)
        if at:
            _check_digest(text, digest, what)
        full_name = f"{domain}/{path}"
        if len(full_name) > MAX_NAME_LENGTH:
            raise _invalid(
                text,
                f"the name {full_name[:40]}... is {len(full_name)} characters "
                f"(at most {MAX_NAME_LENGTH})",
                what=what,
            )
        return cls(domain, path, tag if colon else None, digest if at else None)

    @property
    def name(self) -> str:
        """``registry/repository``, without tag or digest.

        >>> Reference.parse("alpine@sha256:" + "ab" * 32).name
        'docker.io/library/alpine'
        """
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host[:port] that serves the registry API (``/v2/``) for this reference.

        >>> Reference.parse("alpine").api_host, Reference.parse("ghcr.io/a/b").api_host
        ('registry-1.docker.io', 'ghcr.io')
        """
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def is_loopback(self) -> bool:
        """Whether the registry is on this machine: ``localhost``, 127.0.0.0/8 or ``::1``.

        >>> [Reference.parse(f"{h}/app").is_loopback
        ...  for h in ("localhost:5000", "127.0.0.2", "[::1]:5000", "10.0.0.1:5000")]
        [True, True, True, False]
        """
        return is_loopback_host(self.registry)

    def with_tag(self, tag: str) -> Reference:
        """The same repository at ``tag``.

        Any digest is dropped: it identified the manifest of the old tag (or of none),
        and ``repo:new@old-digest`` would pin the old image under a new name.

        >>> str(Reference.parse("app@sha256:" + "0" * 64).with_tag("1.0.0-1"))
        'docker.io/library/app:1.0.0-1'
        """
        _check_tag(f"{self.name}:{tag}", tag)
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> Reference:
        """The same reference pinned to ``digest``; the tag is kept (``name:tag@digest``).

        >>> ref = Reference.parse("app:1").with_digest("sha256:" + "f" * 64)
        >>> ref.tag, ref.digest == "sha256:" + "f" * 64
        ('1', True)
        """
        _check_digest(f"{self.name}@{digest}", digest)
        return Reference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def is_digest(text: str) -> bool:
    """Whether ``text`` is a digest imgtag accepts: a registered algorithm and lower-case
    hex of its length (what go-digest accepts), nothing else.

    >>> is_digest("sha256:" + "a" * 64), is_digest("sha256:../../x"), is_digest("sha256:AB")
    (True, False, False)
    """
    algorithm, colon, hexpart = text.partition(":")
    pattern = _DIGEST_HEX_RES.get(algorithm)
    return bool(colon) and pattern is not None and pattern.match(hexpart) is not None


def is_tag(text: str) -> bool:
    """Whether ``text`` is a tag by the reference grammar (1 to 128 of ``[A-Za-z0-9_.-]``,
    not starting with ``.`` or ``-``).

    >>> is_tag("1.2.3-4"), is_tag("../x"), is_tag("a\x1b[2J")
    (True, False, False)
    """
    return _TAG_RE.match(text) is not None


def is_repository(text: str) -> bool:
    """Whether ``text`` is a repository path by the reference grammar (lower-case
    components, at most 255 characters): what a catalog may hand to a URL.

    >>> is_repository("team/app"), is_repository("../x"), is_repository("Team/app")
    (True, False, False)
    """
    if not text or len(text) > MAX_NAME_LENGTH:
        return False
    return all(_PATH_COMPONENT_RE.match(c) is not None for c in text.split("/"))


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (optionally ``:port``, IPv6 in brackets) is this machine.

    >>> is_loopback_host("localhost"), is_loopback_host("127.1.2.3:80")
    (True, True)
    >>> is_loopback_host("[::1]"), is_loopback_host("::1"), is_loopback_host("example.com")
    (True, True, False)

    A netloc with user info is no host: ``[::1]@example.com`` goes to ``example.com``
    (parse URLs with ``urllib.parse`` and judge ``.hostname``).

    >>> is_loopback_host("[::1]@example.com"), is_loopback_host("localhost@example.com:80")
    (False, False)
    """
    if "@" in host or "/" in host:
        return False
    if host.startswith("["):
        address, _, _ = host[1:].partition("]")
    elif host.count(":") > 1:
        address = host  # a bare IPv6 address: its colons are not a port separator
    else:
        address = host.partition(":")[0]
    if address.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback
