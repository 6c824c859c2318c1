"""Docker credentials as the docker CLI finds them: real config files, real helper programs.

The helpers are executables named ``docker-credential-*`` on a PATH prepended for the
test; they speak the docker-credential-helpers protocol (``get``, server URL on stdin,
JSON on stdout, "credentials not found in native keychain" and exit 1 when unknown) and
record what they were sent.
"""

from __future__ import annotations

import base64
import json
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tagger.errors import ConfigError, ExitCode, ImgtagError, RegistryError, redact
from tagger.registry import auth
from tagger.registry.auth import Credentials, DockerConfig, convert_to_hostname

HUB = "https://index.docker.io/v1/"

# Answers `get` from <name>.json next to the script; appends each server URL it is sent
# to <name>.stdin (one per line; the protocol sends it without a newline).
_HELPER = textwrap.dedent(
    """\
    #!/bin/sh
    dir=$(dirname "$0")
    name=$(basename "$0")
    server=$(cat)
    printf '%s\\n' "$server" >> "$dir/$name.stdin"
    if [ "$1" != get ]; then echo "unknown action $1" >&2; exit 2; fi
    exec "{python}" - "$dir/$name.json" "$server" <<'PY'
    import json, sys
    with open(sys.argv[1]) as f:
        store = json.load(f)
    entry = store.get(sys.argv[2])
    if entry is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    json.dump(dict(ServerURL=sys.argv[2], **entry), sys.stdout)
    PY
    """
)


def secret() -> str:
    """A fresh secret per use, so that one test's registration cannot hide another's leak."""
    return f"s3cret-{uuid.uuid4().hex}"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Helpers:
    """Writes real ``docker-credential-NAME`` executables into a directory on PATH."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir

    def store(self, name: str, entries: dict[str, dict[str, str]]) -> None:
        path = self.bindir / f"docker-credential-{name}"
        path.write_text(_HELPER.replace("{python}", sys.executable))
        path.chmod(0o755)
        (self.bindir / f"docker-credential-{name}.json").write_text(json.dumps(entries))

    def script(self, name: str, body: str, mode: int = 0o755) -> None:
        path = self.bindir / f"docker-credential-{name}"
        path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
        path.chmod(mode)

    def sent(self, name: str) -> list[str]:
        log = self.bindir / f"docker-credential-{name}.stdin"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Helpers:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return Helpers(bindir)


WriteConfig = Callable[[object], dict[str, str]]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Writes ``$DOCKER_CONFIG/config.json`` and returns the env that points at it."""

    def write(content: object) -> dict[str, str]:
        directory = tmp_path / "dockercfg"
        directory.mkdir(exist_ok=True)
        text = content if isinstance(content, str) else json.dumps(content)
        (directory / "config.json").write_text(text)
        return {"DOCKER_CONFIG": str(directory), "HOME": str(tmp_path / "nohome")}

    return write


def load(env: dict[str, str]) -> DockerConfig:
    return DockerConfig.load(env)


# --- where the file is ------------------------------------------------------------------


def test_a_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    config = load({"HOME": str(tmp_path)})
    assert config.path == tmp_path / ".docker" / "config.json"
    assert config.credentials("ghcr.io") is None
    assert load({}).credentials("docker.io") is None  # neither DOCKER_CONFIG nor HOME


def test_home_docker_config_json(tmp_path: Path) -> None:
    (tmp_path / ".docker").mkdir()
    pw = secret()
    (tmp_path / ".docker" / "config.json").write_text(
        json.dumps({"auths": {"ghcr.io": {"auth": b64(f"bob:{pw}")}}})
    )
    assert load({"HOME": str(tmp_path)}).credentials("ghcr.io") == Credentials("bob", pw)


def test_docker_config_wins_over_home(tmp_path: Path, write_config: WriteConfig) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(
        json.dumps({"auths": {"ghcr.io": {"username": "home", "password": secret()}}})
    )
    env = write_config({"auths": {"ghcr.io": {"username": "dc", "password": secret()}}})
    env["HOME"] = str(tmp_path)
    creds = load(env).credentials("ghcr.io")
    assert creds is not None and creds.username == "dc"
    # An empty DOCKER_CONFIG is unset, as for the CLI.
    creds = load({"DOCKER_CONFIG": "", "HOME": str(tmp_path)}).credentials("ghcr.io")
    assert creds is not None and creds.username == "home"


@pytest.mark.parametrize("content", ["", "  \n", "null", "{}"])
def test_empty_files_are_empty_configs(write_config: WriteConfig, content: str) -> None:
    assert load(write_config(content)).credentials("ghcr.io") is None


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"auths": {"ghcr.io": {"auth": "PASSWORD-IN-A-BROKEN-FILE"', "not valid JSON (line 1"),
        ('{"auths": {"x": {"password": "PASSWORD-IN-A-BROKEN-FILE"}},}', "not valid JSON"),
        ('["PASSWORD-IN-A-BROKEN-FILE"]', "must hold a JSON object"),
        ('{"auths": ["PASSWORD-IN-A-BROKEN-FILE"]}', '"auths" must be an object'),
        ('{"auths": {"x": "PASSWORD-IN-A-BROKEN-FILE"}}', 'auths["x"] must be an object'),
        ('{"auths": {"x": {"password": 1234567}}}', 'auths["x"].password must be a string'),
        ('{"credHelpers": {"x": 1}}', '"credHelpers" must map'),
        ('{"credsStore": ["PASSWORD-IN-A-BROKEN-FILE"]}', '"credsStore" must be a string'),
        ('{"auths": {"x": {"auth": "%%%PASSWORD-IN-A-BROKEN-FILE"}}}', 'the "auth" of "x"'),
        ('{"auths": {"x": {"auth": "' + b64("no-colon-PASSWORD") + '"}}}', 'the "auth" of "x"'),
        ('{"auths": {"x": {"auth": "' + b64(":PASSWORD-no-user") + '"}}}', 'the "auth" of "x"'),
    ],
)
def test_a_broken_file_is_a_config_error_naming_the_file_not_its_content(
    write_config: WriteConfig, content: str, why: str
) -> None:
    env = write_config(content)
    with pytest.raises(ConfigError) as info:
        load(env)
    message = str(info.value)
    assert why in message
    assert str(Path(env["DOCKER_CONFIG"]) / "config.json") in message
    assert "PASSWORD" not in message
    assert info.value.exit_code == ExitCode.USAGE
    # No chained exception may carry the text (a JSONDecodeError's .doc is the file).
    err = info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()  # a directory where the file should be
    with pytest.raises(ConfigError, match="cannot be read"):
        load({"DOCKER_CONFIG": str(tmp_path)})


def test_a_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b'{"auths": {"\xff": {}}}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load({"DOCKER_CONFIG": str(tmp_path)})


# --- auths entries ----------------------------------------------------------------------


def test_auth_is_base64_user_colon_password_and_the_password_may_hold_colons(
    write_config: WriteConfig,
) -> None:
    pw = f"{secret()}:with:colons:"
    creds = load(write_config({"auths": {"ghcr.io": {"auth": b64(f"bob:{pw}")}}})).credentials(
        "ghcr.io"
    )
    assert creds == Credentials(username="bob", password=pw)
    assert creds.basic_auth() == ("bob", pw)
    assert creds.auth_config() == {"username": "bob", "password": pw}


def test_auth_wins_over_username_and_password_fields(write_config: WriteConfig) -> None:
    pw = secret()
    env = write_config(
        {"auths": {"ghcr.io": {"auth": b64(f"alice:{pw}"), "username": "x", "password": "y"}}}
    )
    assert load(env).credentials("ghcr.io") == Credentials("alice", pw)


def test_username_and_password_fields(write_config: WriteConfig) -> None:
    pw = secret()
    env = write_config({"auths": {"ghcr.io": {"username": "bob", "password": pw}}})
    assert load(env).credentials("ghcr.io") == Credentials("bob", pw)


def test_field_names_match_case_insensitively_like_go_json(write_config: WriteConfig) -> None:
    pw = secret()
    env = write_config({"Auths": {"ghcr.io": {"Username": "bob", "Password": pw}}})
    assert load(env).credentials("ghcr.io") == Credentials("bob", pw)


def test_identity_token_is_a_refresh_token(write_config: WriteConfig) -> None:
    token = secret()
    env = write_config({"auths": {"reg.example": {"identitytoken": token}}})
    creds = load(env).credentials("reg.example")
    assert creds == Credentials(identity_token=token)
    assert creds.basic_auth() is None
    assert creds.auth_config() == {"identitytoken": token}


def test_identity_token_with_a_user_name_keeps_both(write_config: WriteConfig) -> None:
    token = secret()
    env = write_config({"auths": {"reg.example": {"auth": b64("bob:"), "identitytoken": token}}})
    creds = load(env).credentials("reg.example")
    assert creds is not None
    assert (creds.username, creds.identity_token) == ("bob", token)
    assert creds.auth_config() == {"username": "bob", "identitytoken": token}


def test_registry_token_is_a_bearer_token(write_config: WriteConfig) -> None:
    token = secret()
    env = write_config({"auths": {"reg.example": {"registrytoken": token}}})
    creds = load(env).credentials("reg.example")
    assert creds == Credentials(registry_token=token)
    assert creds.basic_auth() is None
    assert creds.auth_config() == {"registrytoken": token}


def test_an_empty_entry_is_no_credentials(write_config: WriteConfig) -> None:
    # What `docker login` leaves in "auths" when a credsStore holds the secret.
    env = write_config({"auths": {"ghcr.io": {}, "quay.io": None, "x.io": {"auth": ""}}})
    config = load(env)
    assert [config.credentials(r) for r in ("ghcr.io", "quay.io", "x.io")] == [None] * 3


@pytest.mark.parametrize(
    ("key", "registry"),
    [
        ("ghcr.io", "ghcr.io"),
        ("https://ghcr.io", "ghcr.io"),
        ("http://ghcr.io", "ghcr.io"),
        ("https://ghcr.io/v1/", "ghcr.io"),
        ("http://ghcr.io/v2/", "ghcr.io"),
        ("ghcr.io/v1/", "ghcr.io"),
        ("https://user@ghcr.io/", "ghcr.io"),
        ("localhost:5000", "localhost:5000"),
        ("http://localhost:5000", "localhost:5000"),
        ("https://localhost:5000/v1/", "localhost:5000"),
        ("[::1]:5000", "[::1]:5000"),
        ("http://[::1]:5000/v2/", "[::1]:5000"),
        # Docker Hub: `docker login` writes HUB; every name of Hub finds it.
        (HUB, "docker.io"),
        (HUB, "index.docker.io"),
        (HUB, "registry-1.docker.io"),
        (HUB, HUB),
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("https://index.docker.io", "registry-1.docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("https://registry-1.docker.io/v2/", "index.docker.io"),
    ],
)
def test_auths_key_variants_match(write_config: WriteConfig, key: str, registry: str) -> None:
    pw = secret()
    env = write_config({"auths": {key: {"username": "u", "password": pw}}})
    assert load(env).credentials(registry) == Credentials("u", pw)


@pytest.mark.parametrize(
    ("key", "registry"),
    [
        ("ghcr.io:443", "ghcr.io"),  # another host:port is another key
        ("ghcr.io", "ghcr.io:443"),
        ("ghcr.io", "localhost:5000"),
        ("localhost", "localhost:5000"),
        (HUB, "ghcr.io"),
        ("ghcr.io", "docker.io"),
        ("https://ghcr.io.evil.example/", "ghcr.io"),
    ],
)
def test_auths_keys_for_other_hosts_do_not_match(
    write_config: WriteConfig, key: str, registry: str
) -> None:
    env = write_config({"auths": {key: {"username": "u", "password": secret()}}})
    assert load(env).credentials(registry) is None


def test_an_exact_key_wins_over_a_converted_one(write_config: WriteConfig) -> None:
    a, b, c, d = secret(), secret(), secret(), secret()
    env = write_config(
        {
            "auths": {
                "https://ghcr.io/v1/": {"username": "url", "password": a},
                "ghcr.io": {"username": "exact", "password": b},
                "docker.io": {"username": "alias", "password": c},
                HUB: {"username": "hub", "password": d},
            }
        }
    )
    config = load(env)
    assert config.credentials("ghcr.io") == Credentials("exact", b)
    assert config.credentials("docker.io") == Credentials("hub", d)


def test_convert_to_hostname() -> None:
    assert convert_to_hostname("https://reg.example:8443/v2/x") == "reg.example:8443"
    assert convert_to_hostname("oci://reg.example") == "reg.example"
    assert convert_to_hostname("reg.example") == "reg.example"


# --- helpers: which store is asked --------------------------------------------------------


def _all_three(helpers: Helpers, write_config: WriteConfig) -> tuple[dict[str, str], list[str]]:
    pws = [secret() for _ in range(5)]
    helpers.store("testhelper", {"ghcr.io": {"Username": "from-credhelpers", "Secret": pws[0]}})
    helpers.store(
        "store",
        {
            "ghcr.io": {"Username": "from-credsstore", "Secret": pws[1]},
            "quay.io": {"Username": "from-credsstore", "Secret": pws[2]},
        },
    )
    env = write_config(
        {
            "credHelpers": {"ghcr.io": "testhelper"},
            "credsStore": "store",
            "auths": {
                "ghcr.io": {"username": "from-auths", "password": pws[3]},
                "quay.io": {"username": "from-auths", "password": pws[3]},
                "gitlab.example": {"username": "from-auths", "password": pws[4]},
            },
        }
    )
    return env, pws


def test_cred_helpers_beat_creds_store_beats_auths(
    helpers: Helpers, write_config: WriteConfig
) -> None:
    env, pws = _all_three(helpers, write_config)
    config = load(env)
    assert config.credentials("ghcr.io") == Credentials("from-credhelpers", pws[0])
    assert config.credentials("quay.io") == Credentials("from-credsstore", pws[2])
    # A store that is asked is the only answer: "not found" is anonymous, no fallback
    # to the file (docker/cli's native store does the same).
    assert config.credentials("gitlab.example") is None
    assert helpers.sent("testhelper") == ["ghcr.io"]
    assert helpers.sent("store") == ["quay.io", "gitlab.example"]


def test_without_a_store_auths_answer(helpers: Helpers, write_config: WriteConfig) -> None:
    pw = secret()
    env = write_config(
        {
            "credHelpers": {"quay.io": "testhelper"},
            "auths": {"ghcr.io": {"username": "from-auths", "password": pw}},
        }
    )
    helpers.store("testhelper", {})
    assert load(env).credentials("ghcr.io") == Credentials("from-auths", pw)
    assert helpers.sent("testhelper") == []


def test_an_empty_cred_helper_means_the_file_even_with_a_creds_store(
    helpers: Helpers, write_config: WriteConfig
) -> None:
    pw = secret()
    helpers.store("store", {"ghcr.io": {"Username": "from-credsstore", "Secret": secret()}})
    env = write_config(
        {
            "credHelpers": {"ghcr.io": ""},
            "credsStore": "store",
            "auths": {"ghcr.io": {"username": "from-auths", "password": pw}},
        }
    )
    assert load(env).credentials("ghcr.io") == Credentials("from-auths", pw)
    assert helpers.sent("store") == []


def test_cred_helpers_keys_match_exactly_as_in_the_cli(
    helpers: Helpers, write_config: WriteConfig
) -> None:
    pw = secret()
    helpers.store("testhelper", {"ghcr.io": {"Username": "u", "Secret": secret()}})
    env = write_config(
        {
            "credHelpers": {"https://ghcr.io": "testhelper"},
            "auths": {"ghcr.io": {"username": "from-auths", "password": pw}},
        }
    )
    assert load(env).credentials("ghcr.io") == Credentials("from-auths", pw)


@pytest.mark.parametrize("key", [HUB, "docker.io", "index.docker.io", "registry-1.docker.io"])
@pytest.mark.parametrize("registry", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_helpers_are_sent_the_index_url(
    helpers: Helpers, write_config: WriteConfig, key: str, registry: str
) -> None:
    pw = secret()
    helpers.store("testhelper", {HUB: {"Username": "hubuser", "Secret": pw}})
    env = write_config({"credHelpers": {key: "testhelper"}})
    assert load(env).credentials(registry) == Credentials("hubuser", pw)
    assert helpers.sent("testhelper") == [HUB]


@pytest.mark.parametrize("registry", ["localhost:5000", "[::1]:5000", "reg.example:8443"])
def test_other_helpers_are_sent_the_host_as_stored(
    helpers: Helpers, write_config: WriteConfig, registry: str
) -> None:
    pw = secret()
    helpers.store("testhelper", {registry: {"Username": "u", "Secret": pw}})
    env = write_config({"credsStore": "testhelper"})
    assert load(env).credentials(registry) == Credentials("u", pw)
    assert helpers.sent("testhelper") == [registry]


def test_a_token_username_means_an_identity_token(
    helpers: Helpers, write_config: WriteConfig
) -> None:
    token = secret()
    helpers.store("testhelper", {"reg.example": {"Username": "<token>", "Secret": token}})
    creds = load(write_config({"credsStore": "testhelper"})).credentials("reg.example")
    assert creds == Credentials(identity_token=token)
    assert creds.auth_config() == {"identitytoken": token}
    assert creds.basic_auth() is None


def test_a_helper_answer_with_empty_fields_is_no_credentials(
    helpers: Helpers, write_config: WriteConfig
) -> None:
    helpers.store("testhelper", {"reg.example": {"Username": "", "Secret": ""}})
    assert load(write_config({"credsStore": "testhelper"})).credentials("reg.example") is None


def test_a_helper_is_asked_once_per_registry(helpers: Helpers, write_config: WriteConfig) -> None:
    helpers.store("testhelper", {"ghcr.io": {"Username": "u", "Secret": secret()}})
    config = load(write_config({"credsStore": "testhelper"}))
    first = config.credentials("ghcr.io")
    assert config.credentials("ghcr.io") == first
    assert config.credentials("quay.io") is None
    assert config.credentials("quay.io") is None
    assert helpers.sent("testhelper") == ["ghcr.io", "quay.io"]


def test_not_found_on_stderr_is_no_credentials_too(
    helpers: Helpers, write_config: WriteConfig
) -> None:
    helpers.script("quiet", 'cat >/dev/null; echo "Credentials not found" >&2; exit 1\n')
    assert load(write_config({"credsStore": "quiet"})).credentials("ghcr.io") is None


# --- helpers: failures ------------------------------------------------------------------


def test_a_missing_helper_is_a_config_error(helpers: Helpers, write_config: WriteConfig) -> None:
    env = write_config({"credHelpers": {"ghcr.io": "nope"}})
    with pytest.raises(ConfigError) as info:
        load(env).credentials("ghcr.io")
    message = str(info.value)
    assert message.startswith("docker-credential-nope is not installed")
    assert 'credHelpers["ghcr.io"]' in message and "config.json" in message
    assert info.value.exit_code == ExitCode.USAGE


def test_a_helper_that_cannot_be_executed_is_a_config_error(
    helpers: Helpers, write_config: WriteConfig
) -> None:
    helpers.script("noexec", "exit 0\n", mode=0o644)
    with pytest.raises(ConfigError, match=r"docker-credential-noexec .*could not be run"):
        load(write_config({"credsStore": "noexec"})).credentials("ghcr.io")


def test_a_failing_helper_is_a_registry_error_with_one_redacted_line(
    helpers: Helpers, write_config: WriteConfig
) -> None:
    leaked = secret()
    helpers.script(
        "broken",
        f"""\
        cat >/dev/null
        echo "keychain locked; token={leaked}" >&2
        echo "second line {leaked}" >&2
        echo "stdout noise"
        exit 3
        """,
    )
    with pytest.raises(RegistryError) as info:
        load(write_config({"credsStore": "broken"})).credentials("ghcr.io")
    message = str(info.value)
    assert message == (
        "docker-credential-broken failed (exit 3) to get credentials for ghcr.io: "
        "keychain locked; token=***"
    )
    assert info.value.exit_code == ExitCode.REGISTRY


def test_a_failing_helper_quotes_a_plain_stdout_error(
    helpers: Helpers, write_config: WriteConfig
) -> None:
    # Helpers built on docker-credential-helpers print their errors on stdout.
    helpers.script("dbus", 'cat >/dev/null; echo "Cannot autolaunch D-Bus"; exit 1\n')
    with pytest.raises(RegistryError, match=r"\(exit 1\) .* ghcr.io: Cannot autolaunch D-Bus$"):
        load(write_config({"credsStore": "dbus"})).credentials("ghcr.io")


def test_a_helper_that_prints_its_answer_and_fails_leaks_nothing(
    helpers: Helpers, write_config: WriteConfig
) -> None:
    pw = secret()
    answer = json.dumps({"ServerURL": "ghcr.io", "Username": "u", "Secret": pw})
    helpers.script("half", f"cat >/dev/null; echo '{answer}'; exit 1\n")
    with pytest.raises(RegistryError) as info:
        load(write_config({"credsStore": "half"})).credentials("ghcr.io")
    assert (
        str(info.value) == "docker-credential-half failed (exit 1) to get credentials for ghcr.io"
    )


@pytest.mark.parametrize(
    "output", ["this is not json PASSWORD-ISH", "[1, 2]", '{"Secret": 42}', '"text"']
)
def test_a_helper_answering_garbage_is_a_registry_error_without_the_answer(
    helpers: Helpers, write_config: WriteConfig, output: str
) -> None:
    helpers.script("garbage", f"cat >/dev/null; printf '%s' '{output}'\n")
    with pytest.raises(RegistryError) as info:
        load(write_config({"credsStore": "garbage"})).credentials("ghcr.io")
    assert str(info.value) == (
        "docker-credential-garbage answered something that is not credentials JSON for ghcr.io"
    )


def test_a_hanging_helper_times_out(
    helpers: Helpers, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "HELPER_TIMEOUT_SECONDS", 0.3)
    helpers.script("slow", "exec sleep 10\n")
    with pytest.raises(RegistryError, match=r"docker-credential-slow did not answer within 0.3 s"):
        load(write_config({"credsStore": "slow"})).credentials("ghcr.io")


# --- secrets never show -------------------------------------------------------------------


def test_secrets_never_show_in_repr_str_or_errors(
    helpers: Helpers, write_config: WriteConfig
) -> None:
    pw, b64pw, token, rtoken, helper_pw, helper_token = (secret() for _ in range(6))
    helpers.store(
        "testhelper",
        {
            "ghcr.io": {"Username": "helperuser", "Secret": helper_pw},
            "quay.io": {"Username": "<token>", "Secret": helper_token},
        },
    )
    raw_auth = b64(f"bob:{b64pw}")
    env = write_config(
        {
            "credHelpers": {"ghcr.io": "testhelper", "quay.io": "testhelper"},
            "auths": {
                "a.example": {"username": "alice", "password": pw},
                "b.example": {"auth": raw_auth},
                "c.example": {"identitytoken": token},
                "d.example": {"registrytoken": rtoken},
            },
        }
    )
    config = load(env)
    found = [
        config.credentials(r)
        for r in ("a.example", "b.example", "c.example", "d.example", "ghcr.io", "quay.io")
    ]
    assert all(c is not None for c in found)
    secrets = [pw, b64pw, token, rtoken, helper_pw, helper_token, raw_auth]
    texts = [repr(config), str(config)]
    texts += [repr(c) for c in found] + [str(c) for c in found]
    texts.append(repr(found))
    for text in texts:
        for s in secrets:
            assert s not in text
    assert "alice" in repr(found[0]) and "password=***" in repr(found[0])
    # Every secret was registered the moment it was read: redact masks it anywhere.
    for s in secrets:
        assert redact(f"boom {s} boom") == "boom *** boom"

    # And errors built while secrets are around do not carry them.
    helpers.script("broken", f'cat >/dev/null; echo "auth failed for {helper_pw}" >&2; exit 1\n')
    errors: list[ImgtagError] = []
    for store in ("broken", "nope"):
        broken = write_config({"credsStore": store, "auths": {"x": {"password": pw}}})
        with pytest.raises(ImgtagError) as info:
            load(broken).credentials("ghcr.io")
        errors.append(info.value)
    with pytest.raises(ImgtagError) as info:
        load(write_config('{"auths": {"x": {"auth": "' + b64(pw) + '"}}}'))
    errors.append(info.value)
    for err in errors:
        for s in secrets:
            assert s not in str(err) and s not in repr(err)


def test_credentials_repr_shows_which_secrets_are_set() -> None:
    creds = Credentials(username=None, identity_token="x" * 20)
    assert repr(creds) == (
        "Credentials(username=None, password=None, identity_token=***, registry_token=None)"
    )
    assert str(creds) == repr(creds)


def test_docker_config_repr_lists_keys_not_values(write_config: WriteConfig) -> None:
    pw = secret()
    env = write_config(
        {"auths": {"ghcr.io": {"auth": b64(f"u:{pw}")}}, "credHelpers": {"gcr.io": "gcloud"}}
    )
    text = repr(load(env))
    assert "'ghcr.io'" in text and "{'gcr.io': 'gcloud'}" in text
    assert pw not in text and b64(f"u:{pw}") not in text
