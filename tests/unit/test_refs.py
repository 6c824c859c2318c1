"""Image references: the docker/distribution grammar, Hub normalisation, one-sentence errors."""

from __future__ import annotations

import dataclasses

import pytest

from tagger.errors import ExitCode, InvalidReferenceError, UsageError
from tagger.registry.reference import Reference, is_loopback_host

SHA256 = "sha256:" + "0123456789abcdef" * 4
SHA384 = "sha384:" + "ab" * 48
SHA512 = "sha512:" + "cd" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        # Docker Hub: familiar names, the official-image namespace, the legacy hosts.
        ("ubuntu", "docker.io", "library/ubuntu", None, None),
        ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None),
        ("library/ubuntu", "docker.io", "library/ubuntu", None, None),
        ("user/app", "docker.io", "user/app", None, None),
        ("user/app/deep/er", "docker.io", "user/app/deep/er", None, None),
        ("docker.io/ubuntu", "docker.io", "library/ubuntu", None, None),
        ("docker.io/library/ubuntu:latest", "docker.io", "library/ubuntu", "latest", None),
        ("index.docker.io/user/app", "docker.io", "user/app", None, None),
        ("index.docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("registry-1.docker.io/library/nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("registry-1.docker.io/nginx", "docker.io", "library/nginx", None, None),
        # Other registries: a first component with "." or ":" or exactly localhost.
        ("ghcr.io/acme/api", "ghcr.io", "acme/api", None, None),
        ("ghcr.io/ubuntu", "ghcr.io", "ubuntu", None, None),  # no library/ outside Hub
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/app:v1", "localhost:5000", "app", "v1", None),
        ("my-registry:5000/app", "my-registry:5000", "app", None, None),
        ("127.0.0.1:5000/team/app", "127.0.0.1:5000", "team/app", None, None),
        ("[::1]:5000/app", "[::1]:5000", "app", None, None),
        ("[2001:db8::1]/app:tag", "[2001:db8::1]", "app", "tag", None),
        ("Registry.Example.com/app", "Registry.Example.com", "app", None, None),
        ("a-b.c-d.example:1/x", "a-b.c-d.example:1", "x", None, None),
        # A single component is always on Hub, even when it looks like host:port (docker).
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
        ("ghcr.io", "docker.io", "library/ghcr.io", None, None),
        # Path-component separators: one ".", one or two "_", any number of "-".
        ("reg.io/a.b/c_d/e__f/g-h/i---j", "reg.io", "a.b/c_d/e__f/g-h/i---j", None, None),
        ("reg.io/0/9a", "reg.io", "0/9a", None, None),
        # Tags: letters in any case, digits, "_", ".", "-", up to 128, not starting . or -.
        ("app:V1_beta.2-rc", "docker.io", "library/app", "V1_beta.2-rc", None),
        ("app:_x", "docker.io", "library/app", "_x", None),
        ("app:" + "t" * 128, "docker.io", "library/app", "t" * 128, None),
        ("app:1.4.2-17", "docker.io", "library/app", "1.4.2-17", None),
        # Digests, with or without a tag.
        (f"app@{SHA256}", "docker.io", "library/app", None, SHA256),
        (f"app:1@{SHA256}", "docker.io", "library/app", "1", SHA256),
        (f"ghcr.io/a/b:t@{SHA512}", "ghcr.io", "a/b", "t", SHA512),
        (f"reg.io:443/a@{SHA384}", "reg.io:443", "a", None, SHA384),
    ],
)
def test_valid_references(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    # The full form parses back to the same reference.
    assert Reference.parse(str(ref)) == ref
    assert str(ref).startswith(f"{registry}/{repository}")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty string"),
        ("Foo/bar", "lower-case"),
        ("ubuntu/Bar", "lower-case"),
        ("ghcr.io/Acme/api", "lower-case"),
        ("UBUNTU", "lower-case"),
        ("ghcr.io/äpp", 'path component "äpp"'),
        ("-app", 'path component "-app"'),
        ("app_", 'path component "app_"'),
        ("a___b", 'path component "a___b"'),
        ("a..b/c/d", '"a..b" is not a valid registry'),
        ("reg.io/a..b", 'path component "a..b"'),
        ("reg.io/a._b", 'path component "a._b"'),
        ("a//b", "empty path component"),
        ("user/app/", "empty path component"),
        ("/app", "empty path component"),
        ("ghcr.io/", "repository name is empty"),
        ("exa_mple.com/app", '"exa_mple.com" is not a valid registry'),
        ("-reg.io/app", '"-reg.io" is not a valid registry'),
        ("host:port/app", '"host:port" is not a valid registry'),
        ("[::1/app", '"[::1" is not a valid registry'),
        ("ubuntu:la/test", '"ubuntu:la" is not a valid registry'),
        ("ubuntu:", 'the tag ""'),
        ("ubuntu:-x", 'the tag "-x"'),
        ("ubuntu:.x", 'the tag ".x"'),
        ("ubuntu:a+b", 'the tag "a+b"'),
        ("ubuntu:tag:more", 'the tag "tag:more"'),
        ("ubuntu:ä", 'the tag "ä"'),
        ("app:" + "t" * 129, "the tag"),
        ("app@sha256", "not of the form algorithm:hex"),
        ("app@sha256:", "64 lower-case hex digits"),
        ("app@foo:" + "0" * 31, "not of the form algorithm:hex"),
        ("app@", "not of the form algorithm:hex"),
        ("app@sha256:abc", "64 lower-case hex digits"),
        ("app@sha256:" + "A" * 64, "64 lower-case hex digits"),
        ("app@sha256:" + "0" * 65, "64 lower-case hex digits"),
        ("app@sha512:" + "0" * 64, "128 lower-case hex digits"),
        ("app@md5:" + "0" * 32, '"md5" is not supported'),
        ("app@sha256:" + "g" * 64, "64 lower-case hex digits"),
        (f"app@{SHA256}@x", "64 lower-case hex digits"),
        (f"app@@{SHA256}", "not of the form algorithm:hex"),
        ("0123456789abcdef" * 4, "image ID"),
        ("ubuntu latest", "white space"),
        (" ubuntu", "white space"),
        ("ghcr.io/" + "a" * 248, "256 characters (at most 255)"),
        ("a" * 250, "268 characters"),  # docker.io/library/ counts on Hub too
    ],
)
def test_invalid_references(text: str, why: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(text)
    message = str(info.value)
    assert why in message
    # One sentence that names the input (the empty string gets its own wording).
    assert "\n" not in message
    assert f'"{text}"' in message if text else "empty" in message
    assert message.count(": ") <= 2


def test_the_name_limit_is_inclusive() -> None:
    ref = Reference.parse("ghcr.io/" + "a" * 247)
    assert len(ref.name) == 255


def test_an_invalid_reference_is_a_usage_error_exit_2() -> None:
    assert issubclass(InvalidReferenceError, UsageError)
    assert InvalidReferenceError.exit_code == ExitCode.USAGE
    assert int(InvalidReferenceError.exit_code) == 2
    assert not issubclass(InvalidReferenceError, ReferenceError)  # the builtin is not shadowed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ubuntu", "docker.io/library/ubuntu"),
        ("ghcr.io/acme/api", "ghcr.io/acme/api"),
        ("localhost:5000/app", "localhost:5000/app"),
        ("[::1]:5000/a/b", "[::1]:5000/a/b"),
        ("index.docker.io/user/app", "docker.io/user/app"),
    ],
)
def test_parse_repository_accepts_names_without_tag_or_digest(text: str, expected: str) -> None:
    ref = Reference.parse_repository(text)
    assert str(ref) == ref.name == expected
    assert ref.tag is None and ref.digest is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ghcr.io/acme/api:1.0", 'drop the tag ":1.0"'),
        ("ubuntu:latest", 'drop the tag ":latest"'),
        (f"ghcr.io/acme/api@{SHA256}", f'drop the digest "@{SHA256}"'),
        (f"app:1@{SHA256}", "drop the digest"),
        ("localhost:5000", "registry without a repository path"),
        ("registry.example.com:443", 'write e.g. "registry.example.com:443/app"'),
        ("Foo/bar", "lower-case"),
    ],
)
def test_parse_repository_refuses_tags_and_digests(text: str, why: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse_repository(text)
    assert why in str(info.value)
    assert str(info.value).startswith(f'"{text}" is not a valid image repository: ')


@pytest.mark.parametrize(
    ("text", "api_host"),
    [
        ("ubuntu", "registry-1.docker.io"),
        ("index.docker.io/a/b", "registry-1.docker.io"),
        ("registry-1.docker.io/a/b", "registry-1.docker.io"),
        ("ghcr.io/a", "ghcr.io"),
        ("localhost:5000/a", "localhost:5000"),
        ("[::1]:5000/a", "[::1]:5000"),
    ],
)
def test_api_host(text: str, api_host: str) -> None:
    assert Reference.parse(text).api_host == api_host


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("LocalHost:5000", True),
        ("127.0.0.1", True),
        ("127.0.0.1:5000", True),
        ("127.255.0.9:80", True),
        ("[::1]", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("[0:0:0:0:0:0:0:1]:5000", True),
        ("[::ffff:127.0.0.1]:5000", True),  # the reference grammar excludes it: host only
        ("128.0.0.1:5000", False),
        ("10.0.0.1", False),
        ("[::2]:5000", False),
        ("localhost.example.com", False),
        ("docker.io", False),
        ("ghcr.io:443", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
    parseable = host.startswith("[") or "." in host or host.lower().startswith("localhost")
    if parseable and "ffff" not in host:
        assert Reference.parse(f"{host}/app").is_loopback is loopback


def test_with_tag_replaces_the_tag_and_drops_the_digest() -> None:
    ref = Reference.parse(f"ghcr.io/a/b:old@{SHA256}")
    moved = ref.with_tag("1.4.2-17")
    assert str(moved) == "ghcr.io/a/b:1.4.2-17"
    assert str(ref) == f"ghcr.io/a/b:old@{SHA256}"  # frozen: the original is unchanged


def test_with_digest_keeps_the_tag() -> None:
    ref = Reference.parse("ghcr.io/a/b:1").with_digest(SHA256)
    assert str(ref) == f"ghcr.io/a/b:1@{SHA256}"
    assert str(Reference.parse("ghcr.io/a/b").with_digest(SHA512)) == f"ghcr.io/a/b@{SHA512}"


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a/b", "t" * 129, "1.0+meta"])
def test_with_tag_validates(tag: str) -> None:
    with pytest.raises(InvalidReferenceError, match="the tag"):
        Reference.parse("ghcr.io/a/b").with_tag(tag)


@pytest.mark.parametrize("digest", ["", "sha256:abc", "md5:" + "0" * 32, SHA256.upper()])
def test_with_digest_validates(digest: str) -> None:
    with pytest.raises(InvalidReferenceError, match="digest"):
        Reference.parse("ghcr.io/a/b").with_digest(digest)


def test_references_are_frozen_values() -> None:
    ref = Reference.parse("ghcr.io/a/b:1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "2"  # type: ignore[misc]
    assert ref == Reference("ghcr.io", "a/b", "1", None)
    assert len({ref, Reference.parse("ghcr.io/a/b:1")}) == 1
