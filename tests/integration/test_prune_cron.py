"""The cleanup cron grown up, against real registries: ``--keep-from`` (a file or standard
input), ``REG/path/*`` through ``_catalog`` and through GitLab's API, one request pool
across repositories, per-repository summaries, ``--validate``, GitLab's protected tags
and Harbor's immutable rules (their simulators in front of the bed's real registry), and
a ``kill -9`` in the middle of a many-repository run.

Every check of what survived reads the REAL registry directly.
"""

from __future__ import annotations

import base64
import io
import json
import re
import signal
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from test_prune import live_manifests, tags_of
from test_prune_lifecycle import finish, imgtag, kill_when_seen
from test_prune_lifecycle import tags_of as tags_now
from test_registry_providers import seed_untagged

import testbed as tb
from clirun import CliResult, run_cli
from faultproxy import FaultProxy
from seed import seed_image, seed_index
from simulators.gitlab import GitLabSimulator
from simulators.harbor import HarborSimulator
from tagger.registry.client import RegistryClient
from tagger.registry.transport import RetryPolicy, Transport

FAST = RetryPolicy(attempts=8, backoff=0.01, max_backoff=0.05)
GITLAB_TOKEN = "glpat-" + "g" * 20
JOB_TOKEN = "glcbt-" + "j" * 20
HARBOR_PASSWORD = "Harbor-" + "h" * 16
POLICY = ["--keep-last", "2", "--keep-per-version", "0"]


@pytest.fixture
def real(registry_plain: tb.Registry) -> RegistryClient:
    return RegistryClient(Transport(registry_plain.host, lambda: None, retry=FAST))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def prune(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> CliResult:
    if stdin is None:
        return run_cli(
            ["prune", *args], cwd=cwd, env={"IMGTAG_RETRY_BACKOFF": "0.01", **(env or {})}
        )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdin", io.StringIO(stdin))
        return run_cli(
            ["prune", *args], cwd=cwd, env={"IMGTAG_RETRY_BACKOFF": "0.01", **(env or {})}
        )


def plan_of(result: CliResult) -> dict[tuple[str, str], dict[str, object]]:
    doc = json.loads(result.stdout)
    return {(str(r["image"]), str(r["tag"])): r for r in doc["plan"]}


def seed_builds(client: RegistryClient, repo: str, count: int, salt: str = "") -> dict[str, str]:
    return {
        f"1.0.0-{n}": seed_image(client, repo, f"1.0.0-{n}", f"{repo}{salt} build {n}")
        for n in range(1, count + 1)
    }


def one_sentence(result: CliResult) -> str:
    """The error line, after checking it is one line with no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("imgtag: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# --- --keep-from ----------------------------------------------------------------------------


def test_keep_from_a_file_naming_a_tag_a_digest_and_an_image_of_another_repository(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    stem = f"cron/keepfrom-{uuid.uuid4().hex[:8]}"
    app, other = f"{stem}/app", f"{stem}/other"
    builds = seed_builds(real, app, 8)
    # The same image pushed to another repository has the same digest: 1.0.0-2 runs as that.
    assert seed_image(real, other, "prod", f"{app} build 2") == builds["1.0.0-2"]
    listing = workdir / "in-use.txt"
    listing.write_text(
        "# what the cluster runs\n"
        f"{registry_plain.host}/{app}:1.0.0-1\n"
        f"{builds['1.0.0-3']}\n"
        f"{registry_plain.host}/{other}:prod   docker.io/library/nginx:1.27\n"
        "\n"
        "busybox\n"
    )
    result = prune(
        [registry_plain.image(app), *POLICY, "--keep-from", str(listing), "--apply", "--format",
         "json"],
        workdir,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    rows = plan_of(result)
    image = registry_plain.image(app)
    for tag in ("1.0.0-1", "1.0.0-2", "1.0.0-3"):
        assert rows[(image, tag)]["action"] == "keep"
        assert rows[(image, tag)]["reason"] == "in use"
    assert {t for (_, t), r in rows.items() if r["action"] == "delete"} == {
        "1.0.0-4", "1.0.0-5", "1.0.0-6"
    }  # fmt: skip
    assert set(tags_of(real, app)) == {"1.0.0-1", "1.0.0-2", "1.0.0-3", "1.0.0-7", "1.0.0-8"}
    assert builds["1.0.0-4"] not in live_manifests(registry_plain, app)
    assert set(tags_of(real, other)) == {"prod"}


def test_keep_from_stdin_keeps_an_index_whose_child_runs(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = f"cron/stdin-{uuid.uuid4().hex[:8]}"
    seed_builds(real, repo, 4)
    children = [seed_image(real, repo, f"child-{arch}", f"{repo} {arch}") for arch in ("a", "b")]
    index = seed_index(real, repo, "0.9.0-1", children)
    # A pod that pulled by the platform digest runs a child of the index.
    pods = f"{registry_plain.host}/{repo}@{children[1]} {registry_plain.host}/{repo}:9.9.9-1"
    result = prune([registry_plain.image(repo), *POLICY, "--keep-from", "-", "--apply"],
                   workdir, stdin=pods)  # fmt: skip
    assert result.code == 0, result.stderr
    assert re.search(r"0\.9\.0-1 .* keep\s+in use", result.stdout), result.stdout
    assert set(tags_of(real, repo)) == {"0.9.0-1", "1.0.0-3", "1.0.0-4", "child-a", "child-b"}
    assert index in live_manifests(registry_plain, repo)


# --- bad input ------------------------------------------------------------------------------


def test_bad_input_is_one_sentence_and_its_exit_code(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    repo = f"cron/bad-{uuid.uuid4().hex[:8]}"
    seed_builds(real, repo, 3)
    image = registry_plain.image(repo)

    missing = prune([image, "--keep-from", str(workdir / "nope.txt")], workdir)
    assert missing.code == 2
    assert "nope.txt" in one_sentence(missing) and "cannot be read" in missing.stderr

    listing = workdir / "bad.txt"
    listing.write_text(f"{image}:1.0.0-1\nsha256:{'a' * 64}\nregistry.example/Team/App:1\n")
    bad = prune([image, "--keep-from", str(listing), "--apply"], workdir)
    assert bad.code == 2
    assert "line 3" in one_sentence(bad) and "Team/App" in bad.stderr

    star = prune([f"{registry_plain.host}/cron/*/app"], workdir)
    assert star.code == 2
    assert "only as a last /*" in one_sentence(star)

    grace = prune([image, "--untagged-grace", "soon"], workdir)
    assert grace.code == 2
    assert "--untagged-grace" in one_sentence(grace)

    nothing = prune([f"{registry_plain.host}/cron/none-{uuid.uuid4().hex[:8]}/*"], workdir)
    assert nothing.code == 0, nothing.stderr
    assert "no repository under" in nothing.stdout
    assert set(tags_of(real, repo)) == {"1.0.0-1", "1.0.0-2", "1.0.0-3"}  # nothing touched


# --- many repositories through _catalog, --validate -----------------------------------------


def test_a_path_through_the_catalog_with_summaries_and_validate(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    stem = f"cron/many-{uuid.uuid4().hex[:8]}"
    repos = [f"{stem}/svc{n}" for n in range(4)] + [f"{stem}/deep/svc"]
    for repo in repos:
        seed_builds(real, repo, 5)
    outside = f"{stem}-outside/svc"
    seed_builds(real, outside, 5)
    result = prune(
        [f"{registry_plain.host}/{stem}/*", *POLICY, "--concurrency", "3", "--apply", "--validate"],
        workdir,
    )
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    for repo in repos:
        assert f"{registry_plain.host}/{repo}: keep 2, delete 3, untag 0, skip 0" in lines
        assert set(tags_of(real, repo)) == {"1.0.0-4", "1.0.0-5"}
    assert "in total, 5 repositories: keep 10, delete 15, untag 0, skip 0, all done" in lines
    assert lines[-1] == "validate: 10 tags that stay resolve fully"
    assert len(tags_of(real, outside)) == 5

    # A kept image whose layer is gone is named, exit 5.
    victim = repos[0]
    manifest = real.get_manifest(victim, "1.0.0-5").json()
    layer = manifest["layers"][0]["digest"]
    req = urllib.request.Request(f"{registry_plain.url}/v2/{victim}/blobs/{layer}", method="DELETE")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 202
    check = prune([f"{registry_plain.host}/{stem}/*", *POLICY, "--validate"], workdir)
    assert check.code == 5, check.stderr
    assert f"broken: {registry_plain.host}/{victim}:1.0.0-5: the layer 1 {layer[:19]}" in (
        check.stderr
    )
    assert "validate: 1 of 10 tags that stay do not resolve fully" in check.stdout


# --- GitLab ---------------------------------------------------------------------------------


@pytest.fixture
def gitlab(registry_plain: tb.Registry) -> Iterator[GitLabSimulator]:
    group = f"grp{uuid.uuid4().hex[:6]}"
    sim = GitLabSimulator(
        registry_plain.host,
        registry_plain.root / "storage",
        projects=[f"{group}/p{n:02d}" for n in range(20)],
        private_tokens={GITLAB_TOKEN},
        protected={f"{group}/p03": [r"1\.0\.0-[12]"]},
        max_per_page=7,  # pagination at every turn
    )
    with sim:
        yield sim


def gitlab_env(sim: GitLabSimulator, **extra: str) -> dict[str, str]:
    return {"IMGTAG_GITLAB_API_URL": sim.api_url, "IMGTAG_PROVIDER": "gitlab", **extra}


def test_twenty_gitlab_repositories_with_protected_tags_and_images_in_use_on_stdin(
    gitlab: GitLabSimulator, real: RegistryClient, workdir: Path
) -> None:
    group = gitlab.projects[0].split("/")[0]
    seeded = {p: seed_builds(real, p, 5) for p in gitlab.projects}
    # p05's oldest build runs by tag, p07's by digest; a public image runs too.
    front = gitlab.registry_host
    pods = (
        f"{front}/{group}/p05:1.0.0-1 {front}/{group}/p07@{seeded[f'{group}/p07']['1.0.0-2']} "
        "nginx:1.27 registry.k8s.io/pause:3.9"
    )
    gitlab.api.rate_limit(9, "429", 0)  # every 9th API request: 429, Retry-After: 0
    result = prune(
        [f"{front}/{group}/*", *POLICY, "--keep-from", "-", "--concurrency", "8", "--apply"],
        workdir,
        gitlab_env(gitlab, GITLAB_TOKEN=GITLAB_TOKEN),
        stdin=pods,
    )
    assert result.code == 0, result.stderr
    assert gitlab.api.limited > 0
    lines = result.stdout.splitlines()
    assert "in total, 20 repositories: keep 42, delete 56, untag 0, skip 2, all done" in lines
    assert f"{front}/{group}/p03: keep 2, delete 1, untag 0, skip 2" in lines
    assert re.search(rf"{group}/p03 +1\.0\.0-1 .* skip +protected", result.stdout), result.stdout
    for project in gitlab.projects:
        expected = {"1.0.0-4", "1.0.0-5"}
        expected |= {
            f"{group}/p03": {"1.0.0-1", "1.0.0-2"},
            f"{group}/p05": {"1.0.0-1"},
            f"{group}/p07": {"1.0.0-2"},
        }.get(project, set())
        assert set(tags_of(real, project)) == expected, project
    assert GITLAB_TOKEN not in result.stdout + result.stderr


def test_gitlab_before_16_4_untags_through_the_rest_api_with_a_job_token(
    gitlab: GitLabSimulator, real: RegistryClient, workdir: Path
) -> None:
    gitlab.registry_tag_delete = False
    project = gitlab.projects[1]
    builds = seed_builds(real, project, 4)
    seed_image(real, project, "stable", f"{project} build 1")  # shares 1.0.0-1's digest
    result = prune(
        [f"{gitlab.registry_host}/{project}", *POLICY, "--apply", "--format", "json"],
        workdir,
        gitlab_env(gitlab, CI_JOB_TOKEN=JOB_TOKEN, CI_PROJECT_PATH=project),
    )
    # The job token is not known to the simulator yet: a denial, named, exit 5.
    assert result.code == 5, result.stderr
    assert JOB_TOKEN not in result.stdout + result.stderr
    gitlab.job_tokens[JOB_TOKEN] = project
    result = prune(
        [f"{gitlab.registry_host}/{project}", *POLICY, "--apply", "--format", "json"],
        workdir,
        gitlab_env(gitlab, CI_JOB_TOKEN=JOB_TOKEN, CI_PROJECT_PATH=project),
    )
    assert result.code == 0, result.stderr
    rows = plan_of(result)
    untag = rows[(f"{gitlab.registry_host}/{project}", "1.0.0-1")]
    assert untag["action"] == "untag" and untag["result"] == "ok"
    assert gitlab.api.count("DELETE", r"/tags/1\.0\.0-1$") == 1
    after = tags_of(real, project)
    assert set(after) == {"stable", "1.0.0-3", "1.0.0-4"}
    assert after["stable"] == builds["1.0.0-1"]


# --- Harbor ---------------------------------------------------------------------------------


@pytest.fixture
def harbor(registry_plain: tb.Registry) -> Iterator[HarborSimulator]:
    sim = HarborSimulator(
        registry_plain.host,
        registry_plain.root / "storage",
        users={"robot$cron": HARBOR_PASSWORD},
        max_page_size=2,
    )
    with sim:
        yield sim


def harbor_env(sim: HarborSimulator, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "docker-config"
    config.mkdir(exist_ok=True)
    auth = base64.b64encode(f"robot$cron:{HARBOR_PASSWORD}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {sim.registry_host: {"auth": auth}}}))
    return {"DOCKER_CONFIG": str(config), "IMGTAG_HARBOR_API_URL": sim.api_url}


def test_a_harbor_project_with_an_immutable_rule(
    harbor: HarborSimulator, real: RegistryClient, workdir: Path, tmp_path: Path
) -> None:
    project = f"hb{uuid.uuid4().hex[:6]}"
    repo = f"{project}/tools/app"  # nested: the API path holds tools%252Fapp
    harbor.immutable[project] = [("tools/**", "1.0.0-{1,2}")]
    builds = seed_builds(real, repo, 6)
    seed_image(real, repo, "edge", f"{repo} build 3")  # outside --match: 1.0.0-3 goes alone
    orphan = seed_untagged(real, repo, "left behind")
    harbor.state.age(repo, 2 * 3600)  # pushed two hours ago, the orphan included
    result = prune(
        [f"{harbor.registry_host}/{repo}", *POLICY, "--provider", "harbor", "--apply",
         "--untagged", "--untagged-grace", "90m", "--format", "json"],
        workdir,
        harbor_env(harbor, tmp_path),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    rows = plan_of(result)
    image = f"{harbor.registry_host}/{repo}"
    for tag in ("1.0.0-1", "1.0.0-2"):
        assert rows[(image, tag)]["action"] == "skip"
        assert "configured as immutable" in str(rows[(image, tag)]["reason"])
    assert rows[(image, "1.0.0-3")]["action"] == "untag"
    assert rows[(image, "1.0.0-3")]["result"] == "ok"
    assert rows[(image, "")]["digest"] == orphan  # the untagged artifact
    assert harbor.api.count("DELETE", r"/artifacts/1\.0\.0-3/tags/1\.0\.0-3$") == 1
    assert harbor.front.count("PUT") == 0  # no placeholder: Harbor deletes a tag alone
    after = tags_of(real, repo)
    assert set(after) == {"1.0.0-1", "1.0.0-2", "1.0.0-5", "1.0.0-6", "edge"}
    assert after["edge"] == builds["1.0.0-3"]
    assert orphan not in {m.digest for m in harbor.state.manifests(repo)}
    assert builds["1.0.0-4"] not in {m.digest for m in harbor.state.manifests(repo)}
    assert HARBOR_PASSWORD not in result.stdout + result.stderr


# --- kill -9 in a many-repository run -------------------------------------------------------


def test_kill_9_in_a_many_repository_run_then_a_rerun_ends_as_an_uninterrupted_one(
    registry_plain: tb.Registry, real: RegistryClient, workdir: Path
) -> None:
    stem = f"cron/kill-{uuid.uuid4().hex[:8]}"
    repos = [f"{stem}/r{n}" for n in range(6)]
    before = {}
    for repo in repos:
        seed_builds(real, repo, 8)
        seed_image(real, repo, "latest", f"{repo} build 8")
        seed_image(real, repo, "1.0.0-2-alias", f"{repo} build 2")  # outside --match
        before[repo] = tags_of(real, repo)
    expected = {"1.0.0-7", "1.0.0-8", "latest", "1.0.0-2-alias"}
    policy = [*POLICY, "--concurrency", "4"]
    with FaultProxy(registry_plain.host) as proxy:
        proxy.delay(0.02)
        proc = imgtag(["prune", f"{proxy.host}/{stem}/*", "--apply", *policy], workdir)
        kill_when_seen(proxy, proc, "DELETE", "/manifests/", 9)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"
    mid = {repo: tags_now(real, repo) for repo in repos}
    assert any(set(mid[r]) != set(before[r]) for r in repos)  # the kill landed mid-run
    assert any(set(mid[r]) != expected for r in repos)
    for repo in repos:
        for tag, digest in mid[repo].items():
            if tag in expected:
                assert digest == before[repo][tag], (repo, tag)
    code, out, err = finish(
        imgtag(["prune", f"{registry_plain.host}/{stem}/*", "--apply", *policy], workdir)
    )
    assert code == 0, err
    assert "in total, 6 repositories" in out
    for repo in repos:
        final = tags_of(real, repo)
        assert set(final) == expected, repo
        assert all(final[t] == before[repo][t] for t in final), repo


# --- build-push: claims through the provider ------------------------------------------------


def test_build_push_claims_on_gitlab_and_harbor_go_through_their_provider(
    gitlab: GitLabSimulator,
    harbor: HarborSimulator,
    real: RegistryClient,
    registry_plain: tb.Registry,
    testbed: tb.Testbed,
    tmp_path: Path,
) -> None:
    from appfixture import make_app

    app = make_app(tmp_path / "app", "hello self-hosted")
    project = gitlab.projects[2]
    on_gitlab = run_cli(
        ["build-push", f"{gitlab.registry_host}/{project}", "--build", "1", "--format", "json"],
        cwd=app.path,
        env={**testbed.env(), **gitlab_env(gitlab, GITLAB_TOKEN=GITLAB_TOKEN)},
    )
    assert on_gitlab.code == 0, on_gitlab.stderr
    assert "cannot delete" not in on_gitlab.stderr
    # The claim went by its digest through GitLab's registry API.
    assert gitlab.front.count("DELETE", "/manifests/sha256:") >= 1
    assert set(tags_of(real, project)) == {"1.0.0-1"}
    pushed = json.loads(on_gitlab.stdout)["digest"]
    assert live_manifests(registry_plain, project) == {pushed}

    repo = f"hb{uuid.uuid4().hex[:6]}/svc"
    on_harbor = run_cli(
        ["build-push", f"{harbor.registry_host}/{repo}", "--build", "1", "--format", "json"],
        cwd=app.path,
        env={**testbed.env(), **harbor_env(harbor, tmp_path), "IMGTAG_PROVIDER": "harbor"},
    )
    assert on_harbor.code == 0, on_harbor.stderr
    assert "cannot delete" not in on_harbor.stderr
    assert harbor.api.count("DELETE", r"/artifacts/sha256:[0-9a-f]{64}$") >= 1
    assert harbor.front.count("DELETE") == 0  # Harbor's API, not the registry's
    assert set(tags_of(real, repo)) == {"1.0.0-1"}
    assert HARBOR_PASSWORD not in on_harbor.stdout + on_harbor.stderr
    assert GITLAB_TOKEN not in on_gitlab.stdout + on_gitlab.stderr
