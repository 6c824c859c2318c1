"""``imgtag prune`` and ``imgtag build-push`` on the cloud registries (ECR, Artifact Registry,
ACR), against their simulators (``tests/simulators``) in front of the bed's real plain
registry. ECR's API goes through botocore itself, pointed at the simulator with
``IMGTAG_ECR_API_URL``.

Seeding and every check of what survived read the REAL registry directly: its tags with
their digests, and the manifests still linked in its storage. AWS's credential chain is
kept on this machine: keys in the environment, no shared files, no instance metadata.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from test_prune import live_manifests, tags_of

import testbed as tb
from clirun import CliResult, run_cli
from seed import seed_image, seed_index
from simulators.acr import AcrSimulator
from simulators.ecr import EcrSimulator
from simulators.gar import GarSimulator
from tagger.registry.client import RegistryClient
from tagger.registry.transport import RetryPolicy, Transport

FAST = RetryPolicy(attempts=5, backoff=0.01, max_backoff=0.05)
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
HOURS = 3600.0


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def real(registry_plain: tb.Registry) -> RegistryClient:
    return RegistryClient(Transport(registry_plain.host, lambda: None, retry=FAST))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "cwd"
    path.mkdir()
    return path


@pytest.fixture
def ecr(registry_plain: tb.Registry) -> Iterator[EcrSimulator]:
    sim = EcrSimulator(
        registry_plain.host, registry_plain.root / "storage", keys={AWS_KEY}, max_results=3
    )
    with sim:
        yield sim


def aws_env(tmp_path: Path, *, keys: bool = True) -> dict[str, str]:
    """AWS's chain without this machine's files or instance metadata."""
    env = {
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if keys:
        env |= {"AWS_ACCESS_KEY_ID": AWS_KEY, "AWS_SECRET_ACCESS_KEY": AWS_SECRET}
    return env


def ecr_env(sim: EcrSimulator, tmp_path: Path, **kw: bool) -> dict[str, str]:
    return {
        **aws_env(tmp_path, **kw),
        "AWS_REGION": "eu-west-1",
        "IMGTAG_ECR_API_URL": sim.api_url,
        "IMGTAG_PROVIDER": "ecr",
        "IMGTAG_RETRY_BACKOFF": "0.01",
    }


def prune(args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> CliResult:
    return run_cli(["prune", *args], cwd=cwd, env=env)


def rows(result: CliResult) -> dict[str, dict[str, object]]:
    return {str(r["tag"]): r for r in json.loads(result.stdout)["plan"]}


def assert_no_secret(result: CliResult, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout + result.stderr


def new_name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def one_sentence(result: CliResult) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# --- ECR ------------------------------------------------------------------------------------


def test_ecr_exact_survivors_shared_digest_pages_and_throttling(
    ecr: EcrSimulator, real: RegistryClient, registry_plain: tb.Registry, workdir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    repo = f"team/{new_name('app')}"
    ecr.create_repository(repo)
    digests = {n: seed_image(real, repo, f"1.0.0-{n}", f"build {n} of {repo}") for n in range(1, 7)}
    # `latest` shares 1.0.0-2's image: that tag goes alone (BatchDeleteImage by tag).
    seed_image(real, repo, "latest", f"build 2 of {repo}")
    ecr.throttle_every = 4

    result = prune(
        [
            f"{ecr.registry_host}/{repo}",
            "--keep-last", "2", "--keep-per-version", "0", "--apply", "--format", "json",
        ],
        workdir,
        ecr_env(ecr, tmp_path),
    )  # fmt: skip

    assert result.code == 0, result.stderr
    by_tag = rows(result)
    assert by_tag["1.0.0-2"]["action"] == "untag"
    assert {t for t, r in by_tag.items() if r["action"] == "delete"} == {
        "1.0.0-1", "1.0.0-3", "1.0.0-4",
    }  # fmt: skip
    assert tags_of(real, repo) == {
        "1.0.0-5": digests[5], "1.0.0-6": digests[6], "latest": digests[2],
    }  # fmt: skip
    # Exactly the surviving images: the untag left no placeholder.
    assert live_manifests(registry_plain, repo) == {digests[2], digests[5], digests[6]}
    assert ecr.throttled > 0  # ThrottlingException was met and retried
    deletes = [p for op, p in ecr.calls if op == "BatchDeleteImage"]
    assert {"imageTag": "1.0.0-2"} in [i for p in deletes for i in p["imageIds"]]
    assert ecr.front.count("DELETE") == 0  # nothing tried the registry API's DELETE
    assert_no_secret(result, AWS_SECRET)


def test_ecr_last_tag_of_an_index_child_and_untagged(
    ecr: EcrSimulator, real: RegistryClient, registry_plain: tb.Registry, workdir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    repo = f"team/{new_name('multi')}"
    ecr.create_repository(repo)
    # A child that carries a tag of its own, held by a kept index: removing its last tag
    # would delete it on ECR, so the tag is moved to a placeholder first.
    child = seed_image(real, repo, "1.0.0-1", f"child {repo}")
    other = seed_image(real, repo, "scratch", f"other child {repo}")
    index = seed_index(real, repo, "1.0.0-9", [child, other])
    # An old image left without a tag (a moved tag), and a young one.
    old = seed_image(real, repo, "moving", f"first push {repo}")
    kept = seed_image(real, repo, "moving", f"second push {repo}")
    ecr.state.age(repo, 2 * HOURS)
    young = seed_image(real, repo, "young", f"young {repo}")
    seed_image(real, repo, "young", f"young again {repo}")

    result = prune(
        [
            f"{ecr.registry_host}/{repo}", "--keep-last", "1", "--keep-per-version", "0",
            "--match", r"^1\.0\.0-\d+$", "--untagged", "--apply", "--format", "json",
        ],
        workdir,
        ecr_env(ecr, tmp_path),
    )  # fmt: skip

    assert result.code == 0, result.stderr
    assert rows(result)["1.0.0-1"]["action"] in ("untag", "delete")
    after = tags_of(real, repo)
    assert "1.0.0-1" not in after and after["1.0.0-9"] == index
    live = live_manifests(registry_plain, repo)
    assert {child, other, index, kept} <= live  # the index's children stay
    assert old not in live  # untagged, old, needed by nothing: deleted
    assert young in live  # untagged but young: maybe a push still running
    assert any(op == "ListImages" for op, _ in ecr.calls)
    assert ecr.front.count("DELETE") == 0


def test_ecr_batch_delete_sends_at_most_100_ids_a_call(
    ecr: EcrSimulator, real: RegistryClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagger.registry.providers.ecr import EcrProvider

    repo = f"team/{new_name('many')}"
    ecr.create_repository(repo)
    present = seed_image(real, repo, "1.0.0-1", f"one {repo}")
    ids = [{"imageDigest": f"sha256:{n:064x}"} for n in range(249)] + [{"imageDigest": present}]
    env = ecr_env(ecr, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    failures = EcrProvider(ecr.registry_host, env).delete_images(repo, ids)

    assert ecr.batches("BatchDeleteImage") == [100, 100, 50]
    assert len(failures) == 249 and {code for code, _ in failures} == {"ImageNotFound"}
    assert tags_of(real, repo) == {}


@pytest.mark.parametrize(
    ("image", "env", "words"),
    [
        ("123456789012.dkr.ecr.amazonaws.com/app", {}, "names no region"),
        ("{host}/app", {"AWS_REGION": ""}, "names no AWS region"),
        ("{host}/app", {"AWS_SECRET_ACCESS_KEY": ""}, "without AWS_SECRET_ACCESS_KEY"),
        ("{host}/app", {"AWS_ACCESS_KEY_ID": "AKIA EXAMPLE"}, "does not parse"),
        ("ghcr.io/o/app", {"IMGTAG_ECR_API_URL": ""}, "cannot serve ghcr.io"),
    ],
)
def test_ecr_bad_input_is_one_sentence_exit_2_before_any_request(
    ecr: EcrSimulator, workdir: Path, tmp_path: Path, image: str, env: dict[str, str], words: str
) -> None:
    full = {**ecr_env(ecr, tmp_path), **env}
    for name in [n for n, v in full.items() if v == ""]:
        del full[name]
    result = prune(
        [image.format(host=ecr.registry_host), "--keep-last", "1", "--apply"], workdir, full
    )
    assert result.code == 2, result.stderr
    assert words in one_sentence(result)
    assert ecr.calls == [] and ecr.front.count() == 0  # no request went out
    assert_no_secret(result, AWS_SECRET)


def test_ecr_no_credentials_is_exit_2(ecr: EcrSimulator, workdir: Path, tmp_path: Path) -> None:
    result = prune(
        [f"{ecr.registry_host}/app", "--keep-last", "1", "--apply"],
        workdir,
        ecr_env(ecr, tmp_path, keys=False),
    )
    assert result.code == 2, result.stderr
    assert "no AWS credentials" in one_sentence(result)
    assert ecr.calls == []


# --- build-push: claims, and the registry's immutable tags ---------------------------------


def test_build_push_on_ecr_claims_through_batch_delete(
    ecr: EcrSimulator, real: RegistryClient, registry_plain: tb.Registry,
    testbed: tb.Testbed, tmp_path: Path,
) -> None:  # fmt: skip
    from appfixture import make_app

    app = make_app(tmp_path / "app", "hello ecr")
    repo = f"team/{new_name('bp')}"
    ecr.create_repository(repo)
    result = run_cli(
        ["build-push", f"{ecr.registry_host}/{repo}", "--build", "1", "--format", "json"],
        cwd=app.path,
        env={**testbed.env(), **ecr_env(ecr, tmp_path)},
    )
    assert result.code == 0, result.stderr
    pushed = json.loads(result.stdout)["digest"]
    # The claim was written through the registry API and deleted through BatchDeleteImage.
    assert ecr.front.count("PUT", r"/manifests/imgtag-claim-") >= 1
    assert any(op == "BatchDeleteImage" for op, _ in ecr.calls)
    assert tags_of(real, repo) == {"1.0.0-1": pushed}
    assert live_manifests(registry_plain, repo) == {pushed}
    assert_no_secret(result, AWS_SECRET)


def test_build_push_on_an_immutable_ecr_repository_is_refused_in_its_words(
    ecr: EcrSimulator, real: RegistryClient, registry_plain: tb.Registry,
    testbed: tb.Testbed, tmp_path: Path,
) -> None:  # fmt: skip
    from appfixture import make_app

    app = make_app(tmp_path / "app", "hello immutable ecr")
    repo = f"team/{new_name('imm')}"
    ecr.create_repository(repo, immutable=True)
    image = f"{ecr.registry_host}/{repo}"
    env = {**testbed.env(), **ecr_env(ecr, tmp_path)}

    first = run_cli(
        ["build-push", image, "--build", "1", "--format", "json"], cwd=app.path, env=env
    )
    assert first.code == 0, first.stderr
    published = json.loads(first.stdout)["digest"]
    # Immutable server-side: no claim (it could never be renewed or removed there).
    assert ecr.front.count("PUT", r"/manifests/imgtag-") == 0
    assert "immutable" in first.stderr

    # A rival publishes 1.0.0-2 after our last check, before our push's manifest lands:
    # the registry's own refusal is the guard, and imgtag reports it as a refusal.
    rival: list[str] = []
    ecr.on_put[(repo, "1.0.0-2")] = lambda: rival.append(
        seed_image(real, repo, "1.0.0-2", f"rival {repo}")
    )
    second = run_cli(["build-push", image, "--build", "2"], cwd=app.path, env=env)

    assert second.code == 3, second.stderr
    line = second.stderr.strip().splitlines()[-1]
    assert line.startswith("imgtag: error: refused to publish"), second.stderr
    assert "cannot be overwritten because the repository is immutable" in line
    assert "Traceback" not in second.stderr
    # Nothing left behind: the rival's tag and ours, no claim, no temporary tag.
    assert tags_of(real, repo) == {"1.0.0-1": published, "1.0.0-2": rival[0]}
    assert live_manifests(registry_plain, repo) == {published, rival[0]}
    assert ecr.front.count("PUT", r"/manifests/imgtag-") == 0


# --- ACR ------------------------------------------------------------------------------------

ACR_REFRESH = "acr-refresh-" + "r" * 24
ACR_AAD = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.aad." + "a" * 20
ACR_PASSWORD = "acr-password-" + "p" * 20


@pytest.fixture
def acr(registry_plain: tb.Registry) -> Iterator[AcrSimulator]:
    sim = AcrSimulator(
        registry_plain.host,
        registry_plain.root / "storage",
        refresh_tokens={ACR_REFRESH},
        aad_tokens={ACR_AAD},
        users={"ci-token": ACR_PASSWORD},
        max_page=2,
    )
    with sim:
        yield sim


def acr_env(
    sim: AcrSimulator, tmp_path: Path, login: str | None = "identitytoken"
) -> dict[str, str]:
    """A docker config as ``az acr login`` (an identity token) or ``docker login`` (a user
    and password) writes it, or none."""
    import base64

    config = tmp_path / "acr-docker-config"
    config.mkdir(exist_ok=True)
    auths: dict[str, dict[str, str]] = {}
    if login == "identitytoken":
        user = base64.b64encode(b"00000000-0000-0000-0000-000000000000:").decode()
        auths[sim.registry_host] = {"auth": user, "identitytoken": ACR_REFRESH}
    elif login == "password":
        auths[sim.registry_host] = {
            "auth": base64.b64encode(f"ci-token:{ACR_PASSWORD}".encode()).decode()
        }
    (config / "config.json").write_text(json.dumps({"auths": auths}))
    return {
        "DOCKER_CONFIG": str(config),
        "IMGTAG_ACR_API_URL": sim.api_url,
        "IMGTAG_PROVIDER": "acr",
        "IMGTAG_RETRY_BACKOFF": "0.01",
    }


def test_acr_exact_survivors_locks_pages_and_429s(
    acr: AcrSimulator, real: RegistryClient, registry_plain: tb.Registry, workdir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    repo = f"team/{new_name('app')}"
    digests = {n: seed_image(real, repo, f"1.0.0-{n}", f"build {n} of {repo}") for n in range(1, 7)}
    seed_image(real, repo, "latest", f"build 2 of {repo}")  # shares 1.0.0-2's image
    acr.lock(repo, "1.0.0-3", delete=False)  # a locked tag keeps its image
    acr.lock(repo, digests[4], write=False)  # a locked image
    acr.api.rate_limit(every=4, kind="429", seconds=1)

    result = prune(
        [
            f"{acr.registry_host}/{repo}",
            "--keep-last", "2", "--keep-per-version", "0", "--apply", "--format", "json",
        ],
        workdir,
        acr_env(acr, tmp_path),
    )  # fmt: skip

    assert result.code == 0, result.stderr
    by_tag = rows(result)
    assert by_tag["1.0.0-2"]["action"] == "untag"
    assert by_tag["1.0.0-3"]["action"] == "skip"
    assert by_tag["1.0.0-3"]["reason"] == "locked on ACR: the tag 1.0.0-3 has deleteEnabled false"
    assert by_tag["1.0.0-4"]["action"] == "skip"
    assert "writeEnabled false" in str(by_tag["1.0.0-4"]["reason"])
    assert tags_of(real, repo) == {
        "1.0.0-3": digests[3], "1.0.0-4": digests[4], "1.0.0-5": digests[5],
        "1.0.0-6": digests[6], "latest": digests[2],
    }  # fmt: skip
    assert live_manifests(registry_plain, repo) == {digests[n] for n in (2, 3, 4, 5, 6)}
    untags = [s for m, p, s in acr.api.log if m == "DELETE" and p.endswith("/_tags/1.0.0-2")]
    assert untags.count(202) == 1  # the untag: ACR's own (a 429 may come before it)
    assert acr.front.count("DELETE", digests[1]) == 1  # the delete: /v2 by digest
    assert acr.api.limited > 0
    assert acr.api.count("GET", r"/_tags$") >= 1  # the check before planning
    assert_no_secret(result, ACR_REFRESH)


def test_acr_exchange_and_untagged(
    acr: AcrSimulator, real: RegistryClient, registry_plain: tb.Registry, workdir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    repo = f"team/{new_name('untagged')}"
    old = seed_image(real, repo, "1.0.0-1", f"first push {repo}")
    kept = seed_image(real, repo, "1.0.0-1", f"second push {repo}")  # `old` loses its tag
    acr.state.age(repo, 2 * HOURS)
    env = {**acr_env(acr, tmp_path, login=None), "IMGTAG_ACR_AAD_TOKEN": ACR_AAD}

    result = prune(
        [f"{acr.registry_host}/{repo}", "--keep-last", "1", "--untagged", "--apply"],
        workdir,
        env,
    )

    assert result.code == 0, result.stderr
    assert acr.api.count("POST", "/oauth2/exchange") == 1
    assert live_manifests(registry_plain, repo) == {kept}
    assert old != kept
    assert acr.api.count("GET", r"/_manifests$") >= 1
    assert_no_secret(result, ACR_AAD)


def test_acr_user_and_password_login(
    acr: AcrSimulator, real: RegistryClient, workdir: Path, tmp_path: Path
) -> None:
    repo = f"team/{new_name('basic')}"
    seed_image(real, repo, "1.0.0-1", f"one {repo}")
    two = seed_image(real, repo, "1.0.0-2", f"two {repo}")
    result = prune(
        [f"{acr.registry_host}/{repo}", "--keep-last", "1", "--keep-per-version", "0", "--apply"],
        workdir,
        acr_env(acr, tmp_path, login="password"),
    )
    assert result.code == 0, result.stderr
    assert acr.api.count("GET", "/oauth2/token") >= 1
    assert tags_of(real, repo) == {"1.0.0-2": two}
    assert_no_secret(result, ACR_PASSWORD)


def test_acr_bad_input_is_exit_2_before_any_request(
    acr: AcrSimulator, workdir: Path, tmp_path: Path
) -> None:
    no_login = prune(
        [f"{acr.registry_host}/team/app", "--keep-last", "1", "--apply"],
        workdir,
        acr_env(acr, tmp_path, login=None),
    )
    assert no_login.code == 2, no_login.stderr
    assert "needs its API's login" in one_sentence(no_login)
    forced = prune(
        ["ghcr.io/o/app", "--keep-last", "1", "--apply"],
        workdir,
        {**acr_env(acr, tmp_path), "IMGTAG_ACR_API_URL": ""},
    )
    assert forced.code == 2, forced.stderr
    assert "cannot serve ghcr.io" in one_sentence(forced)
    assert acr.api.count() == 0 and acr.front.count() == 0


def test_build_push_on_acr_releases_its_claim_by_digest(
    acr: AcrSimulator, real: RegistryClient, registry_plain: tb.Registry,
    testbed: tb.Testbed, tmp_path: Path,
) -> None:  # fmt: skip
    from appfixture import make_app

    app = make_app(tmp_path / "app", "hello acr")
    repo = f"team/{new_name('bp')}"
    result = run_cli(
        ["build-push", f"{acr.registry_host}/{repo}", "--build", "1", "--format", "json"],
        cwd=app.path,
        env={**testbed.env(), **acr_env(acr, tmp_path)},
    )
    assert result.code == 0, result.stderr
    pushed = json.loads(result.stdout)["digest"]
    assert acr.front.count("PUT", r"/manifests/imgtag-claim-") >= 1
    assert acr.front.count("DELETE", r"/manifests/sha256:") >= 1  # the claim, by its digest
    assert tags_of(real, repo) == {"1.0.0-1": pushed}
    assert live_manifests(registry_plain, repo) == {pushed}


# --- Artifact Registry ----------------------------------------------------------------------

GAR_TOKEN = "ya29.a0Af" + "g" * 40
GCLOUD_TOKEN = "ya29.gcloud" + "c" * 40


@pytest.fixture
def gar(registry_plain: tb.Registry) -> Iterator[GarSimulator]:
    sim = GarSimulator(
        registry_plain.host, registry_plain.root / "storage", tokens={GAR_TOKEN, GCLOUD_TOKEN},
        max_page=2,
    )  # fmt: skip
    with sim:
        yield sim


def gar_env(sim: GarSimulator, token: str | None = GAR_TOKEN) -> dict[str, str]:
    env = {
        "CLOUDSDK_ARTIFACTS_LOCATION": sim.location,
        "IMGTAG_GAR_API_URL": sim.api_url,
        "IMGTAG_PROVIDER": "gar",
        "IMGTAG_RETRY_BACKOFF": "0.01",
    }
    if token is not None:
        env["GOOGLE_OAUTH_ACCESS_TOKEN"] = token
    return env


def test_gar_exact_survivors_nested_package_pages_and_429s(
    gar: GarSimulator, real: RegistryClient, registry_plain: tb.Registry, workdir: Path,
) -> None:  # fmt: skip
    gar.create_repository("acme", "docker")
    repo = f"acme/docker/tools/{new_name('app')}"  # package tools%2Fapp-…
    digests = {n: seed_image(real, repo, f"1.0.0-{n}", f"build {n} of {repo}") for n in range(1, 7)}
    seed_image(real, repo, "latest", f"build 2 of {repo}")
    gar.api.rate_limit(every=4, kind="429", seconds=1)

    result = prune(
        [
            f"{gar.registry_host}/{repo}",
            "--keep-last", "2", "--keep-per-version", "0", "--apply", "--format", "json",
        ],
        workdir,
        gar_env(gar),
    )  # fmt: skip

    assert result.code == 0, result.stderr
    assert rows(result)["1.0.0-2"]["action"] == "untag"
    assert tags_of(real, repo) == {
        "1.0.0-5": digests[5], "1.0.0-6": digests[6], "latest": digests[2],
    }  # fmt: skip
    assert live_manifests(registry_plain, repo) == {digests[2], digests[5], digests[6]}
    assert gar.api.count("DELETE", r"/packages/tools%2Fapp-[0-9a-f]+/tags/1\.0\.0-2$") >= 1
    assert gar.api.count("DELETE", r"/versions/sha256:") >= 3
    assert gar.api.count("GET", r"/operations/") >= 3  # each delete's operation, to done
    assert gar.api.limited > 0
    assert gar.front.count("DELETE") == 0
    assert_no_secret(result, GAR_TOKEN)


def test_gar_registry_api_delete_of_a_tagged_manifest_is_refused(
    gar: GarSimulator, real: RegistryClient, workdir: Path
) -> None:
    """Without the gar provider, the registry API's own DELETE meets GAR's rule."""
    gar.create_repository("acme", "docker")
    repo = f"acme/docker/{new_name('oci')}"
    seed_image(real, repo, "1.0.0-1", f"one {repo}")
    two = seed_image(real, repo, "1.0.0-2", f"two {repo}")
    result = prune(
        [f"{gar.registry_host}/{repo}", "--keep-last", "1", "--keep-per-version", "0", "--apply"],
        workdir,
        {**gar_env(gar), "IMGTAG_PROVIDER": "oci"},
    )
    assert result.code == 5, result.stderr
    assert "GOOGLE_MANIFEST_DANGLING_TAG" in result.stdout + result.stderr
    assert tags_of(real, repo)["1.0.0-2"] == two and "1.0.0-1" in tags_of(real, repo)


def test_gar_untagged_with_a_gcloud_token(
    gar: GarSimulator, real: RegistryClient, registry_plain: tb.Registry, workdir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    gar.create_repository("acme", "docker")
    repo = f"acme/docker/{new_name('untagged')}"
    old = seed_image(real, repo, "1.0.0-1", f"first push {repo}")
    kept = seed_image(real, repo, "1.0.0-1", f"second push {repo}")
    gar.state.age(repo, 2 * HOURS)
    # gcloud's own command, as a stand-in that prints what `gcloud auth print-access-token` does.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(
        '#!/bin/sh\n[ "$*" = "auth print-access-token" ] && { echo '
        + GCLOUD_TOKEN
        + "; exit 0; }\n"
        "exit 1\n"
    )
    gcloud.chmod(0o755)
    import os

    env = {**gar_env(gar, token=None), "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    result = prune(
        [f"{gar.registry_host}/{repo}", "--keep-last", "1", "--untagged", "--apply"], workdir, env
    )

    assert result.code == 0, result.stderr
    assert old != kept and live_manifests(registry_plain, repo) == {kept}
    assert gar.api.count("GET", r"/versions$") >= 1
    assert_no_secret(result, GCLOUD_TOKEN)


def test_gar_immutable_tags_refuse_deletes_as_skips(
    gar: GarSimulator, real: RegistryClient, workdir: Path
) -> None:
    gar.create_repository("acme", "frozen", immutable=True)
    repo = f"acme/frozen/{new_name('app')}"
    one = seed_image(real, repo, "1.0.0-1", f"one {repo}")
    two = seed_image(real, repo, "1.0.0-2", f"two {repo}")
    result = prune(
        [
            f"{gar.registry_host}/{repo}", "--keep-last", "1", "--keep-per-version", "0",
            "--apply", "--format", "json",
        ],
        workdir,
        gar_env(gar),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    row = rows(result)["1.0.0-1"]
    assert row["action"] == "skip" and "immutable tags enabled" in str(row["reason"])
    assert tags_of(real, repo) == {"1.0.0-1": one, "1.0.0-2": two}


@pytest.mark.parametrize(
    ("image", "env", "words"),
    [
        ("{host}/acme/docker/app", {"CLOUDSDK_ARTIFACTS_LOCATION": ""}, "names no Artifact"),
        ("{host}/acme/docker/app", {"GOOGLE_OAUTH_ACCESS_TOKEN": "ya29 x"}, "does not parse"),
        ("{host}/acme/app", {}, "PROJECT/REPOSITORY/IMAGE"),
        ("{host}/acme/docker/app", {"GOOGLE_OAUTH_ACCESS_TOKEN": "", "PATH": "/nonexistent"},
         "GOOGLE_OAUTH_ACCESS_TOKEN"),
        ("contoso.azurecr.io/app", {"IMGTAG_GAR_API_URL": ""}, "cannot serve contoso.azurecr.io"),
    ],
)  # fmt: skip
def test_gar_bad_input_is_exit_2_before_any_request(
    gar: GarSimulator, workdir: Path, image: str, env: dict[str, str], words: str
) -> None:
    full = {**gar_env(gar), **env}
    for name in [n for n, v in full.items() if v == ""]:
        del full[name]
    result = prune(
        [image.format(host=gar.registry_host), "--keep-last", "1", "--apply"], workdir, full
    )
    assert result.code == 2, result.stderr
    assert words in one_sentence(result)
    assert gar.api.count() == 0 and gar.front.count() == 0
    assert_no_secret(result, "ya29 x")


def test_build_push_on_gar_immutable_and_mutable(
    gar: GarSimulator, real: RegistryClient, registry_plain: tb.Registry,
    testbed: tb.Testbed, tmp_path: Path,
) -> None:  # fmt: skip
    from appfixture import make_app

    app = make_app(tmp_path / "app", "hello gar")
    gar.create_repository("acme", "docker")
    gar.create_repository("acme", "frozen", immutable=True)
    env = {**testbed.env(), **gar_env(gar)}

    # Mutable: the claim is written and released through the versions API.
    mutable = f"acme/docker/{new_name('bp')}"
    ok = run_cli(
        ["build-push", f"{gar.registry_host}/{mutable}", "--build", "1", "--format", "json"],
        cwd=app.path,
        env=env,
    )
    assert ok.code == 0, ok.stderr
    assert gar.front.count("PUT", rf"{mutable}/manifests/imgtag-claim-") >= 1
    assert gar.api.count("DELETE", r"/versions/sha256:") >= 1
    assert tags_of(real, mutable) == {"1.0.0-1": json.loads(ok.stdout)["digest"]}

    # Immutable: no claim; a rival's tag is the registry's to refuse, and imgtag says so.
    frozen = f"acme/frozen/{new_name('bp')}"
    rival: list[str] = []

    def rival_push(method: str, path: str, query: str) -> tuple[int, dict[str, str], bytes] | None:
        if method == "PUT" and path.endswith(f"{frozen}/manifests/1.0.0-1") and not rival:
            rival.append(seed_image(real, frozen, "1.0.0-1", f"rival {frozen}"))
        return answer(method, path, query)

    answer = gar.front.interceptor
    assert answer is not None
    gar.front.intercept(rival_push)
    refused = run_cli(
        ["build-push", f"{gar.registry_host}/{frozen}", "--build", "1"], cwd=app.path, env=env
    )
    assert refused.code == 3, refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("imgtag: error: refused to publish") and "immutable tags enabled" in line
    assert tags_of(real, frozen) == {"1.0.0-1": rival[0]}
    assert live_manifests(registry_plain, frozen) == {rival[0]}
    assert gar.front.count("PUT", rf"{frozen}/manifests/imgtag-") == 0


def test_github_template_prune_job_runs_against_the_gar_simulator(
    gar: GarSimulator, real: RegistryClient, tmp_path: Path, workdir: Path
) -> None:
    """The prune step of the rendered workflow, with the environment a scheduled run gives it
    after the Artifact Registry alternative's auth step (its access token)."""
    import os
    import subprocess
    import sys

    from ruamel.yaml import YAML

    gar.create_repository("acme", "docker")
    repo = f"acme/docker/{new_name('nightly')}"
    digests = {
        n: seed_image(
            real, repo, f"1.0.0-{n}", f"nightly {n} {repo}", created="2024-01-01T00:00:00Z"
        )
        for n in range(1, 25)
    }  # older than the job's --keep-within 30d
    image = f"{gar.registry_host}/{repo}"
    rendered = run_cli(["ci", "github", "--image", image, "--output", "-"], cwd=workdir)
    assert rendered.code == 0, rendered.stderr
    workflow = YAML(typ="safe").load(rendered.stdout)
    step = workflow["jobs"]["prune"]["steps"][-1]
    values = {"${{ steps.auth.outputs.access_token }}": GAR_TOKEN}
    env = {k: str(v) for k, v in workflow["env"].items()}
    for name, value in step.get("env", {}).items():
        env[name] = values.get(value, "true" if name == "APPLY" else value)
    assert env["GOOGLE_OAUTH_ACCESS_TOKEN"] == GAR_TOKEN
    # The simulator cannot be called LOCATION-docker.pkg.dev: its address and location.
    env.update(
        {
            "IMGTAG_PROVIDER": "gar",
            "IMGTAG_GAR_API_URL": gar.api_url,
            "CLOUDSDK_ARTIFACTS_LOCATION": gar.location,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
        }
    )
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]], cwd=workdir, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert tags_of(real, repo) == {f"1.0.0-{n}": digests[n] for n in range(5, 25)}
    assert GAR_TOKEN not in done.stdout + done.stderr


def test_build_push_on_ecr_with_a_docker_login_alone_falls_back_to_no_claim(
    ecr: EcrSimulator, real: RegistryClient, testbed: tb.Testbed, tmp_path: Path
) -> None:
    """No AWS credentials for ECR's API (only the registry login): nothing can be deleted,
    so no claim is written; the push is re-verified instead."""
    from appfixture import make_app

    app = make_app(tmp_path / "app", "hello ecr without keys")
    repo = f"team/{new_name('nokeys')}"
    ecr.create_repository(repo)
    result = run_cli(
        ["build-push", f"{ecr.registry_host}/{repo}", "--build", "1", "--format", "json"],
        cwd=app.path,
        env={**testbed.env(), **ecr_env(ecr, tmp_path, keys=False)},
    )
    assert result.code == 0, result.stderr
    assert "cannot delete" in result.stderr or "no AWS credentials" in result.stderr
    assert ecr.front.count("PUT", r"/manifests/imgtag-") == 0
    assert ecr.calls == []  # botocore found no keys: not one API call went out
    assert tags_of(real, repo) == {"1.0.0-1": json.loads(result.stdout)["digest"]}
