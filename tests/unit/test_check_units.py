"""``tagger.check``'s pure parts: reading container-structure-test files, Go's semantics
the verdicts depend on, the static checks, the settings, the reports, and the lazy imports.
The runs against real images are in ``tests/integration/test_check*.py``."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tagger.check import structure as st
from tagger.check.report import render_json, render_junit
from tagger.check.results import Report, Verdict, failed, passed, skipped
from tagger.check.settings import CheckSettings
from tagger.check.static import ImageFacts, chk003, chk004, chk005
from tagger.config import Config
from tagger.errors import ExitCode, UsageError


def test_a_json_file_matches_keys_without_regard_to_case_as_the_binary() -> None:
    text = json.dumps(
        {"SchemaVersion": "2.0.0", "commandtests": [{"NAME": "a", "Command": "/x", "exitcode": 3}]}
    )
    f = st.parse(text, "t.json")
    assert f.command_tests[0].name == "a" and f.command_tests[0].exit_code == 3


def test_yaml_keys_are_strict_and_duplicates_refused() -> None:
    with pytest.raises(st.StructureFileError, match="unknown key commandtests "):
        st.parse("schemaVersion: 2.0.0\ncommandtests: []\n", "t.yaml")
    with pytest.raises(st.StructureFileError, match="appears twice"):
        st.parse("schemaVersion: 2.0.0\nmetadataTest: {}\nmetadataTest: {}\n", "t.yaml")
    with pytest.raises(st.StructureFileError, match=r"must end in \.yaml, \.yml or \.json"):
        st.parse("schemaVersion: 2.0.0\n", "tests.txt")


def test_a_file_error_is_a_usage_error() -> None:
    assert issubclass(st.StructureFileError, UsageError)
    assert st.StructureFileError.exit_code is ExitCode.USAGE


def test_defaults_are_the_binarys() -> None:
    f = st.parse(
        "schemaVersion: 2.0.0\nfileExistenceTests: [{name: a, path: /a}]\n"
        "metadataTest: {cmd: []}\n",
        "t.yml",
    )
    (test,) = f.file_existence_tests
    assert (test.should_exist, test.uid, test.gid) == (True, -1, -1)
    # An empty cmd list is a test (the image must have none); an absent one is not.
    assert f.metadata.cmd == () and f.metadata.entrypoint is None and not f.metadata.empty


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        ("^bar$", "bar\n", False),  # Go: $ is the end of the text
        ("^bar\n$", "bar\n", True),
        ("(?m)^bar$", "foo\nbar\n", True),
        (r"\d+", "x42", True),
        (r"\Qa.b\E", "axb", False),
        (r"\Qa.b\E", "a.b", True),
        ("[[:upper:]]{2}", "xAB", True),
        ("[", "x", None),
    ],
)
def test_go_regular_expressions(pattern: str, text: str, found: bool | None) -> None:
    assert st.go_search(pattern, text) is found


def test_an_invalid_pattern_fails_expected_and_excluded_alike() -> None:
    test = st.CommandTest("t", "/x", expected_output=("(",), excluded_output=("(",))
    assert len(st.check_output(test, "", "", 0)) == 2


def test_os_expand_semantics() -> None:
    env = {"A": "1", "B_2": "two"}.get
    lookup = lambda k: env(k) or ""  # noqa: E731
    assert st.expand("$A$B_2 ${A}x $$ ${ $", lookup) == "1two 1x   $"


def test_go_mode_strings_of_tar_headers() -> None:
    assert st.go_mode(st.Entry("x", b"0", 0o100644, 0, 0)) == "-rw-r--r--"
    assert st.go_mode(st.Entry("x", b"0", 0o2755, 0, 0)) == "grwxr-xr-x"
    assert st.go_mode(st.Entry("x", b"5", 0o755, 0, 0)) == "drwxr-xr-x"  # type from the flag


def test_metadata_ports_fix_the_binarys_bug_both_ways() -> None:
    facts = ImageFacts.from_config({"ExposedPorts": {"8080/tcp": {}}})
    assert st.judge_metadata(st.MetadataTest(exposed_ports=("8080/tcp",)), facts) == []
    assert st.judge_metadata(st.MetadataTest(unexposed_ports=("8080/tcp",)), facts) == [
        "Port 8080/tcp should not be exposed"
    ]
    assert st.judge_metadata(st.MetadataTest(exposed_ports=("8080/udp",)), facts) == [
        "Port 8080/udp not found in config"
    ]


def test_static_checks() -> None:
    root = ImageFacts.from_config({"User": "0:0", "ExposedPorts": {"80/tcp": {}}})
    assert chk003(root).verdict is Verdict.FAIL and chk004(root).verdict is Verdict.PASS
    app = ImageFacts.from_config({"User": "app", "Cmd": ["sh", "-c", "exec app"]})
    assert chk003(app).verdict is Verdict.PASS and chk005(app).verdict is Verdict.PASS
    assert chk005(ImageFacts.from_config({})).verdict is Verdict.FAIL
    init = ImageFacts.from_config({"Entrypoint": ["/usr/bin/dumb-init", "--"], "Cmd": ["x"]})
    assert "dumb-init" in chk005(init).details[0]


def test_settings_validate_and_merge() -> None:
    project = Config(None, {"check": {"ignore": ["CHK002"], "user": "5000"}})
    s = CheckSettings.resolve({"ignore": ["chk004"]}, project=project)
    assert s.ignore == {"CHK004"} and s.user == "5000:0" and s.build_push == "off"
    strict = CheckSettings.resolve({}, project=Config(None, {"check": {"build_push": "strict"}}))
    assert strict.build_push == "strict"
    for given, message in [
        ({"stop_timeout": -1}, "--stop-timeout"),
        ({"user": "1:x"}, "--user"),
        ({"ignore": ["IMG001"]}, "no such check"),
        ({"writable": ["tmp"]}, "absolute path"),
    ]:
        with pytest.raises(UsageError, match=message):
            CheckSettings.resolve(given, project=Config())


def test_reports_give_every_result_a_verdict() -> None:
    report = Report(
        "app:1",
        "sha256:x",
        [
            passed("CHK003", "user"),
            failed("CHK001", "stop", "killed\x1b"),
            skipped("CHK002", "uid", "no"),
        ],
    )
    doc = json.loads(render_json(report))
    assert [c["verdict"] for c in doc["checks"]] == ["pass", "fail", "skip"]
    assert doc["passed"] is False and doc["counts"] == {"pass": 1, "fail": 1, "skip": 1}
    root = ET.fromstring(render_junit(report).split("\n", 1)[1])  # control characters escaped
    assert root.get("failures") == "1" and root.get("skipped") == "1"


def test_importing_the_check_command_and_parsing_json_loads_no_docker_nor_yaml() -> None:
    code = (
        "import sys, tagger.cli, tagger.check.structure as st, tagger.check.run;"
        "st.parse('{\"schemaVersion\": \"2.0.0\"}', 't.json');"
        "print(sorted(m for m in ('docker', 'yaml', 'requests') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
