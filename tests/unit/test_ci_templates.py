"""The scheduled-prune templates in ci-templates/: valid against the CI systems' own schemas
(check-jsonschema's vendored copies, no network), and wired the way DESIGN.md asks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML  # comes with check-jsonschema

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "ci-templates"
CHECK = Path(sys.executable).parent / "check-jsonschema"


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("github/prune.yml", "vendor.github-workflows"),
        ("gitlab/prune.yml", "vendor.gitlab-ci"),
    ],
)
def test_template_validates_against_the_ci_schema(path: str, schema: str) -> None:
    result = subprocess.run(
        [str(CHECK), "--builtin-schema", schema, str(TEMPLATES / path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_template_fails_validation(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text((TEMPLATES / "github/prune.yml").read_text().replace("runs-on:", "run-on:"))
    result = subprocess.run(
        [str(CHECK), "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0


@pytest.mark.parametrize(
    "path", ["github/prune.yml", "gitlab/prune.yml", "kubernetes/prune-cronjob.yaml"]
)
def test_every_template_installs_through_imgtag_install(path: str) -> None:
    text = (TEMPLATES / path).read_text()
    assert 'IMGTAG_INSTALL: "imgtag-release==' in text or (
        "name: IMGTAG_INSTALL" in text and 'value: "imgtag-release==' in text
    )
    assert '"$IMGTAG_INSTALL"' in text
    assert " prune " in text and "--apply" in text


def test_the_cronjob_is_a_well_formed_kubernetes_cronjob() -> None:
    doc = YAML(typ="safe").load((TEMPLATES / "kubernetes/prune-cronjob.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("batch/v1", "CronJob")
    assert doc["spec"]["concurrencyPolicy"] == "Forbid"
    pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DOCKER_CONFIG"] == "/docker-config"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["docker-config"] == "/docker-config"
    assert pod["volumes"][0]["secret"]["secretName"] == "imgtag-registry"
