"""``imgtag prune`` on ghcr.io and Docker Hub, against their simulators (``tests/simulators``)
in front of the bed's real plain registry: the registry API passes through except DELETE
(405 UNSUPPORTED), so every removal must go through the provider's API.

Seeding and every check of what survived read the REAL registry directly: its tags with
their digests, and the manifests still linked in its storage.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from test_prune import live_manifests, tags_of

import testbed as tb
from clirun import CliResult, run_cli
from seed import seed_image, seed_index
from simulators.dockerhub import DockerHubSimulator, HubUser
from simulators.ghcr import GhcrSimulator, Token
from tagger.registry.client import RegistryClient
from tagger.registry.mediatypes import DOCKER_MANIFEST
from tagger.registry.transport import RetryPolicy, Transport

FAST = RetryPolicy(attempts=5, backoff=0.01, max_backoff=0.05)
PLAN_KEYS = {"image", "tag", "digest", "created", "action", "reason"}
FULL_TOKEN = "ghp_" + "f" * 36
READ_TOKEN = "ghp_" + "r" * 36
#: A token that lists no scopes (as a workflow's GITHUB_TOKEN) and may not delete.
WORKFLOW_READ_TOKEN = "ghs_" + "w" * 36
HUB_PASSWORD = "dckr_pat_" + "p" * 27
HOURS = 3600.0


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def real(registry_plain: tb.Registry) -> RegistryClient:
    return RegistryClient(Transport(registry_plain.host, lambda: None, retry=FAST))


@pytest.fixture
def ghcr(registry_plain: tb.Registry) -> Iterator[GhcrSimulator]:
    sim = GhcrSimulator(
        registry_plain.host,
        registry_plain.root / "storage",
        tokens={
            FULL_TOKEN: Token(),
            READ_TOKEN: Token(scopes="read:packages"),
            WORKFLOW_READ_TOKEN: Token(scopes="read:packages", classic=False),
        },
        max_per_page=3,  # pagination at every turn
    )
    with sim:
        yield sim


@pytest.fixture
def hub(registry_plain: tb.Registry) -> Iterator[DockerHubSimulator]:
    sim = DockerHubSimulator(
        registry_plain.host,
        registry_plain.root / "storage",
        users={"hubber": HubUser(HUB_PASSWORD), "reader": HubUser(HUB_PASSWORD, False)},
        max_page_size=2,
    )
    with sim:
        yield sim


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def ghcr_env(sim: GhcrSimulator, token: str | None = FULL_TOKEN) -> dict[str, str]:
    env = {"GITHUB_API_URL": sim.api_url, "IMGTAG_PROVIDER": "ghcr"}
    if token is not None:
        env["GITHUB_TOKEN"] = token
    return env


def hub_env(sim: DockerHubSimulator, tmp_path: Path, user: str | None = "hubber") -> dict[str, str]:
    config = tmp_path / "docker-config"
    config.mkdir(exist_ok=True)
    auths = {}
    if user is not None:
        import base64

        auth = base64.b64encode(f"{user}:{HUB_PASSWORD}".encode()).decode()
        auths = {"https://index.docker.io/v1/": {"auth": auth}}
    (config / "config.json").write_text(json.dumps({"auths": auths}))
    return {
        "DOCKER_CONFIG": str(config),
        "IMGTAG_DOCKERHUB_API_URL": sim.api_url,
        "IMGTAG_PROVIDER": "dockerhub",
    }


def seed_untagged(client: RegistryClient, repo: str, content: str) -> str:
    """An image left without a tag (as a multi-arch build's child, or a moved tag's image):
    pushed under a scratch tag, which then moves to another image that is deleted by digest."""
    scratch = f"scratch-{uuid.uuid4().hex[:8]}"
    digest = seed_image(client, repo, scratch, content)
    other = seed_image(client, repo, scratch, f"{scratch} {content}")
    client.delete_manifest(repo, other)
    assert client.head_manifest(repo, digest) is not None
    assert scratch not in client.list_tags(repo)
    return digest


def prune(args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> CliResult:
    return run_cli(["prune", *args], cwd=cwd, env=env)


def rows(result: CliResult) -> list[dict[str, object]]:
    doc = json.loads(result.stdout)
    assert all(set(r) >= PLAN_KEYS for r in doc["plan"]), doc["plan"]
    return list(doc["plan"])


def assert_no_secret(result: CliResult, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout + result.stderr


def new_name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


# --- ghcr -----------------------------------------------------------------------------------


def test_ghcr_exact_survivors_shared_digest_nested_org_package_pages_and_429s(
    ghcr: GhcrSimulator, real: RegistryClient, registry_plain: tb.Registry, workdir: Path
) -> None:
    repo = f"acme/tools/{new_name('app')}"  # an organisation's nested package: tools%2Fapp-...
    digests = {n: seed_image(real, repo, f"1.0.0-{n}", f"build {n} of {repo}") for n in range(1, 7)}
    # `latest` shares 1.0.0-2's version: that tag must go alone, its version stays.
    seed_image(real, repo, "latest", f"build 2 of {repo}")
    assert tags_of(real, repo)["latest"] == digests[2]
    ghcr.api.rate_limit(every=4, kind="429", seconds=1)

    result = prune(
        [
            ghcr.registry_host + "/" + repo,
            "--keep-last", "2", "--keep-per-version", "0", "--apply", "--format", "json",
        ],
        workdir,
        ghcr_env(ghcr),
    )  # fmt: skip

    assert result.code == 0, result.stderr
    by_tag = {r["tag"]: r for r in rows(result)}
    assert by_tag["1.0.0-2"]["action"] == "untag"
    assert {t for t, r in by_tag.items() if r["action"] == "delete"} == {
        "1.0.0-1",
        "1.0.0-3",
        "1.0.0-4",
    }
    assert all(r.get("result", "ok") == "ok" for r in by_tag.values())
    assert tags_of(real, repo) == {
        "1.0.0-5": digests[5],
        "1.0.0-6": digests[6],
        "latest": digests[2],
    }
    # Exactly the surviving images: no placeholder of the untag is left as a version.
    assert live_manifests(registry_plain, repo) == {digests[2], digests[5], digests[6]}
    assert ghcr.api.limited > 0  # the 429s were met and waited out
    assert ghcr.api.count("GET", r"/versions$") > 1  # pages of at most 3 versions
    assert ghcr.front.count("DELETE") == 0  # nothing tried the registry API's DELETE
    assert_no_secret(result, FULL_TOKEN)


def test_ghcr_untagged_index_children_and_leftovers(
    ghcr: GhcrSimulator, real: RegistryClient, registry_plain: tb.Registry, workdir: Path
) -> None:
    repo = f"alice/{new_name('multi')}"  # a user's package
    old_kids = [seed_untagged(real, repo, f"old {arch} {repo}") for arch in ("a", "b")]
    old = seed_index(real, repo, "1.0.0-1", old_kids)
    new_kids = [seed_untagged(real, repo, f"new {arch} {repo}") for arch in ("a", "b")]
    new = seed_index(real, repo, "1.0.0-2", new_kids)
    # A moved tag: 1.0.0-3 was pushed twice; the first image is left without a tag.
    moved = seed_image(real, repo, "1.0.0-3", f"first push {repo}", media_type=DOCKER_MANIFEST)
    third = seed_image(real, repo, "1.0.0-3", f"second push {repo}", media_type=DOCKER_MANIFEST)
    ghcr.state.age(repo, 2 * HOURS)
    # Pushed a moment ago and untagged: maybe a multi-arch push still running.
    fresh = seed_untagged(real, repo, f"fresh {repo}")
    ghcr.api.rate_limit(every=3, kind="403", seconds=1)

    result = prune(
        [
            ghcr.registry_host + "/" + repo,
            "--keep-last", "2", "--keep-per-version", "0", "--untagged", "--apply",
            "--format", "json",
        ],
        workdir,
        ghcr_env(ghcr),
    )  # fmt: skip

    assert result.code == 0, result.stderr
    plan = rows(result)
    untagged = {r["digest"]: r for r in plan if r["tag"] == ""}
    assert {d for d, r in untagged.items() if r["action"] == "delete"} == {moved, *old_kids}
    assert untagged[fresh]["action"] == "keep"
    assert not set(new_kids) & set(untagged)  # children of a kept index: not even a row
    assert all(r["created"] is None for r in untagged.values())
    assert {r["tag"]: r["action"] for r in plan if r["tag"]} == {
        "1.0.0-3": "keep",
        "1.0.0-2": "keep",
        "1.0.0-1": "delete",
    }
    assert tags_of(real, repo) == {"1.0.0-2": new, "1.0.0-3": third}
    assert live_manifests(registry_plain, repo) == {new, *new_kids, third, fresh}
    assert old not in live_manifests(registry_plain, repo)
    assert ghcr.api.limited > 0  # 403 + x-ratelimit-remaining: 0, waited until the reset

    again = prune(
        [ghcr.registry_host + "/" + repo, "--keep-last", "2", "--untagged", "--apply"],
        workdir,
        ghcr_env(ghcr),
    )
    assert again.code == 0, again.stderr
    assert live_manifests(registry_plain, repo) == {new, *new_kids, third, fresh}


@pytest.mark.parametrize("token", [READ_TOKEN, WORKFLOW_READ_TOKEN], ids=["classic", "workflow"])
def test_ghcr_token_without_delete_rights_is_exit_5_and_deletes_nothing(
    ghcr: GhcrSimulator, real: RegistryClient, workdir: Path, token: str
) -> None:
    """A classic token says its scopes: refused before planning. A workflow's token does
    not: each delete is refused (403) and named."""
    repo = f"alice/{new_name('ro')}"
    for n in range(1, 4):
        seed_image(real, repo, f"1.0.0-{n}", f"ro {n} {repo}")
    before = tags_of(real, repo)

    result = prune(
        [ghcr.registry_host + "/" + repo, "--keep-last", "1", "--keep-per-version", "0", "--apply"],
        workdir,
        ghcr_env(ghcr, token),
    )

    assert result.code == 5, result.stderr
    assert "delete:packages" in result.stderr and "GITHUB_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert tags_of(real, repo) == before
    assert_no_secret(result, token)


def test_ghcr_bad_input_is_one_sentence_and_no_deletion(
    ghcr: GhcrSimulator, real: RegistryClient, workdir: Path
) -> None:
    repo = f"alice/{new_name('bad')}"
    for n in range(1, 3):
        seed_image(real, repo, f"1.0.0-{n}", f"bad {n} {repo}")
    before = tags_of(real, repo)
    image = ghcr.registry_host + "/" + repo
    base = [image, "--keep-last", "1", "--keep-per-version", "0", "--apply"]

    no_token = prune(base, workdir, ghcr_env(ghcr, token=None))
    assert no_token.code == 2 and "GITHUB_TOKEN" in no_token.stderr, no_token.stderr

    unknown = prune([*base, "--provider", "quay"], workdir, ghcr_env(ghcr))
    assert unknown.code == 2 and "IMGTAG_PROVIDER" in unknown.stderr, unknown.stderr

    nobody = prune([ghcr.registry_host + "/nobody/app", "--apply"], workdir, ghcr_env(ghcr))
    assert nobody.code == 5 and "'nobody'" in nobody.stderr, nobody.stderr
    assert "GITHUB_API_URL" in nobody.stderr

    oci = prune([image, "--untagged"], workdir, {"IMGTAG_PROVIDER": "oci"})
    assert oci.code == 2 and "--untagged" in oci.stderr, oci.stderr

    plain_api = prune(base, workdir, {**ghcr_env(ghcr), "GITHUB_API_URL": "http://api.example"})
    assert plain_api.code == 2 and "GITHUB_API_URL" in plain_api.stderr, plain_api.stderr

    for result in (no_token, unknown, nobody, oci, plain_api):
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr  # progress + error
        assert "Traceback" not in result.stderr
    assert tags_of(real, repo) == before


def test_ghcr_rate_limit_beyond_the_budget_is_exit_5_naming_it(
    ghcr: GhcrSimulator, real: RegistryClient, workdir: Path
) -> None:
    repo = f"alice/{new_name('limited')}"
    for n in range(1, 3):
        seed_image(real, repo, f"1.0.0-{n}", f"limited {n} {repo}")
    before = tags_of(real, repo)
    ghcr.api.rate_limit(every=1, kind="403", seconds=3600)

    result = prune(
        [ghcr.registry_host + "/" + repo, "--keep-last", "1", "--apply"],
        workdir,
        ghcr_env(ghcr),
    )

    assert result.code == 5, result.stderr
    assert "rate limit" in result.stderr
    assert tags_of(real, repo) == before


def test_ghcr_last_tagged_version_refused_is_a_skip(
    ghcr: GhcrSimulator, real: RegistryClient, workdir: Path
) -> None:
    repo = f"alice/{new_name('last')}"
    first = seed_image(real, repo, "1.0.0-1", f"last 1 {repo}")
    second = seed_image(real, repo, "1.0.0-2", f"last 2 {repo}")
    # As if another cleanup removed 1.0.0-2's version in the meantime: GitHub answers 400.
    ghcr.refuse_as_last.add(first)

    result = prune(
        [ghcr.registry_host + "/" + repo, "--keep-last", "1", "--keep-per-version", "0",
         "--apply", "--format", "json"],
        workdir,
        ghcr_env(ghcr),
    )  # fmt: skip

    assert result.code == 0, result.stderr
    row = next(r for r in rows(result) if r["tag"] == "1.0.0-1")
    assert row["action"] == "skip"
    assert "last tagged version" in str(row["reason"])
    assert tags_of(real, repo) == {"1.0.0-1": first, "1.0.0-2": second}


def test_github_template_prune_job_runs_against_the_ghcr_simulator(
    ghcr: GhcrSimulator, real: RegistryClient, tmp_path: Path, workdir: Path
) -> None:
    from ruamel.yaml import YAML

    repo = f"acme/{new_name('nightly')}"
    digests = {
        n: seed_image(
            real, repo, f"1.0.0-{n}", f"nightly {n} {repo}", created="2024-01-01T00:00:00Z"
        )
        for n in range(1, 25)
    }  # older than the job's --keep-within 30d
    image = f"{ghcr.registry_host}/{repo}"
    rendered = run_cli(["ci", "github", "--image", image, "--output", "-"], cwd=workdir)
    assert rendered.code == 0, rendered.stderr
    workflow = YAML(typ="safe").load(rendered.stdout)
    step = workflow["jobs"]["prune"]["steps"][-1]

    # The runner's environment: the workflow's env, the step's env with its expressions as a
    # scheduled run evaluates them, GITHUB_API_URL (Actions sets it), and the provider (the
    # simulator cannot be called ghcr.io).
    values = {
        "${{ secrets.IMGTAG_GITHUB_TOKEN || secrets.GITHUB_TOKEN }}": FULL_TOKEN,
    }
    env = {k: str(v) for k, v in workflow["env"].items()}
    for name, value in step.get("env", {}).items():
        env[name] = values.get(value, "true" if name == "APPLY" else value)
    assert env["IMAGE"] == image and env.get("GITHUB_TOKEN") == FULL_TOKEN
    env.update({"GITHUB_API_URL": ghcr.api_url, "IMGTAG_PROVIDER": "ghcr"})
    env["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    env["HOME"] = str(tmp_path)

    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]], cwd=workdir, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert tags_of(real, repo) == {f"1.0.0-{n}": digests[n] for n in range(5, 25)}
    assert FULL_TOKEN not in done.stdout + done.stderr


# --- Docker Hub -----------------------------------------------------------------------------


def test_dockerhub_exact_survivors_shared_digest_pages_and_429s(
    hub: DockerHubSimulator,
    real: RegistryClient,
    registry_plain: tb.Registry,
    tmp_path: Path,
    workdir: Path,
) -> None:
    repo = f"hubber/{new_name('app')}"
    digests = {n: seed_image(real, repo, f"1.0.0-{n}", f"hub {n} of {repo}") for n in range(1, 6)}
    seed_image(real, repo, "stable", f"hub 2 of {repo}")  # shares 1.0.0-2's image
    hub.api.rate_limit(every=3, kind="429", seconds=1)

    result = prune(
        [
            hub.registry_host + "/" + repo,
            "--keep-last", "2", "--keep-per-version", "0", "--apply", "--format", "json",
        ],
        workdir,
        hub_env(hub, tmp_path),
    )  # fmt: skip

    assert result.code == 0, result.stderr
    actions = {r["tag"]: r["action"] for r in rows(result)}
    assert actions["1.0.0-2"] == "untag" and actions["1.0.0-1"] == "delete"
    assert tags_of(real, repo) == {
        "1.0.0-4": digests[4],
        "1.0.0-5": digests[5],
        "stable": digests[2],
    }
    # Hub deletes tags, not images: every image is still stored.
    assert set(digests.values()) <= live_manifests(registry_plain, repo)
    assert hub.api.limited > 0
    assert hub.api.count("GET", r"/tags$") > 1  # pages of two tags
    assert hub.front.count("DELETE") == 0
    assert_no_secret(result, HUB_PASSWORD)


def test_dockerhub_old_login_endpoint_and_bad_input(
    hub: DockerHubSimulator, real: RegistryClient, tmp_path: Path, workdir: Path
) -> None:
    repo = f"hubber/{new_name('login')}"
    for n in range(1, 4):
        seed_image(real, repo, f"1.0.0-{n}", f"login {n} {repo}")
    image = hub.registry_host + "/" + repo
    base = [image, "--keep-last", "1", "--keep-per-version", "0", "--apply"]
    before = tags_of(real, repo)

    denied = prune(base, workdir, hub_env(hub, tmp_path, user="reader"))
    assert denied.code == 5 and "docker login" in denied.stderr, denied.stderr
    assert tags_of(real, repo) == before

    nobody = prune(base, workdir, hub_env(hub, tmp_path, user=None))
    assert nobody.code == 2 and "https://index.docker.io/v1/" in nobody.stderr, nobody.stderr

    untagged = prune([*base, "--untagged"], workdir, hub_env(hub, tmp_path))
    assert untagged.code == 2 and "--untagged" in untagged.stderr, untagged.stderr
    assert tags_of(real, repo) == before

    hub.auth_token_endpoint = False  # an API with only /v2/users/login
    done = prune(base, workdir, hub_env(hub, tmp_path))
    assert done.code == 0, done.stderr
    assert set(tags_of(real, repo)) == {"1.0.0-3"}
    assert hub.api.count("POST", r"/v2/users/login$") == 1
    for result in (denied, nobody, untagged, done):
        assert_no_secret(result, HUB_PASSWORD)
        assert "Traceback" not in result.stderr


def test_provider_names_in_text_output(
    ghcr: GhcrSimulator, real: RegistryClient, workdir: Path
) -> None:
    """A dry run on ghcr needs no token; untagged rows show "-" as their tag in text."""
    repo = f"alice/{new_name('dry')}"
    seed_image(real, repo, "1.0.0-1", f"dry {repo}")
    seed_untagged(real, repo, f"dry untagged {repo}")
    ghcr.state.age(repo, 2 * HOURS)

    dry = prune([ghcr.registry_host + "/" + repo], workdir, ghcr_env(ghcr, token=None))
    assert dry.code == 0, dry.stderr

    result = prune([ghcr.registry_host + "/" + repo, "--untagged"], workdir, ghcr_env(ghcr))
    assert result.code == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "untagged:" in line)
    assert re.search(r"\s-\s+sha256:", line), line


# --- build-push: claims through the provider ------------------------------------------------


def test_build_push_claims_on_ghcr_delete_through_the_github_api(
    ghcr: GhcrSimulator,
    real: RegistryClient,
    registry_plain: tb.Registry,
    testbed: tb.Testbed,
    tmp_path: Path,
) -> None:
    from appfixture import make_app

    app = make_app(tmp_path / "app", "hello providers")
    repo = f"alice/{new_name('bp')}"
    image = f"{ghcr.registry_host}/{repo}"

    # A token that may not delete: the guard says so and falls back (no claim is made).
    weak = run_cli(
        ["build-push", image, "--build", "1", "--format", "json"],
        cwd=app.path,
        env={**testbed.env(), **ghcr_env(ghcr, READ_TOKEN)},
    )
    assert weak.code == 0, weak.stderr
    assert "cannot delete" in weak.stderr
    assert ghcr.api.count("DELETE") == 0

    # A token that may: the claim is made, and released through the GitHub API.
    full = run_cli(
        ["build-push", image, "--build", "2", "--format", "json"],
        cwd=app.path,
        env={**testbed.env(), **ghcr_env(ghcr)},
    )
    assert full.code == 0, full.stderr
    assert "cannot delete" not in full.stderr
    pushed = json.loads(full.stdout)["digest"]
    assert ghcr.api.count("DELETE", r"/versions/\d+$") >= 1
    assert set(tags_of(real, repo)) == {"1.0.0-1", "1.0.0-2"}  # no claim tag left
    first = tags_of(real, repo)["1.0.0-1"]
    assert live_manifests(registry_plain, repo) == {first, pushed}  # nor its version
    assert ghcr.front.count("DELETE") == 0
    assert_no_secret(full, FULL_TOKEN)


# --- signatures and referrers on the providers ----------------------------------------------


def _follower(subject: str, suffix: str = ".sig") -> str:
    return subject.replace(":", "-") + suffix


@pytest.mark.parametrize("provider", ["ghcr", "dockerhub"])
def test_signatures_and_referrers_follow_their_image_on_the_providers(
    provider: str,
    ghcr: GhcrSimulator,
    hub: DockerHubSimulator,
    real: RegistryClient,
    tmp_path: Path,
    workdir: Path,
) -> None:
    """A signature there is a version (ghcr) or a tag (Hub) like any other: it goes with
    its image, and an orphan stays unless --orphans."""
    if provider == "ghcr":
        repo, host, env = f"acme/{new_name('signed')}", ghcr.registry_host, ghcr_env(ghcr)
    else:
        repo, host, env = f"hubber/{new_name('signed')}", hub.registry_host, hub_env(hub, tmp_path)
    old = seed_image(real, repo, "1.0.0-1", f"old of {repo}")
    new = seed_image(real, repo, "1.0.0-2", f"new of {repo}")
    for subject in (old, new):
        seed_image(real, repo, _follower(subject), f"signature of {subject}")
        sbom = seed_image(real, repo, f"sbom-{subject[7:19]}", f"sbom of {subject}")
        seed_index(real, repo, _follower(subject, ""), [sbom])  # the referrers tag schema
    gone = "sha256:" + "0d" * 32
    orphan = seed_image(real, repo, _follower(gone), f"signature of an image elsewhere {repo}")
    args = [f"{host}/{repo}", "--keep-last", "1", "--keep-per-version", "0", "--match", r"^1\."]
    # One removal at a time: the Hub simulator removes a tag by pushing a placeholder and
    # deleting it by digest, and Distribution's delete (which scans every tag) can miss a
    # tag another such removal is rewriting at that moment (seen once in four runs).
    args += ["--concurrency", "1"]

    first = prune([*args, "--apply", "--format", "json"], workdir, env)
    assert first.code == 0, first.stderr
    reasons = {r["tag"]: r["reason"] for r in rows(first)}
    assert reasons[_follower(gone)] == "orphan (--orphans removes it)"
    left = tags_of(real, repo)
    assert {"1.0.0-2", _follower(new), _follower(new, ""), _follower(gone)} <= set(left)
    assert not {"1.0.0-1", _follower(old), _follower(old, "")} & set(left)
    assert left[_follower(gone)] == orphan

    second = prune([*args, "--apply", "--orphans"], workdir, env)
    assert second.code == 0, second.stderr
    assert _follower(gone) not in tags_of(real, repo)
    assert {"1.0.0-2", _follower(new), _follower(new, "")} <= set(tags_of(real, repo))
