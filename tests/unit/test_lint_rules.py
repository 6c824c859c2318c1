"""Each rule: what it catches and what it must not (exact rule ids and lines)."""

from __future__ import annotations

import pytest

from tagger.lint import Severity, base_image_of, lint_text
from tagger.lint.parser import parse
from tagger.lint.rules import ALL_RULES, RULES_BY_ID

CLEAN_TAIL = 'USER 10001\nENTRYPOINT ["tini", "--"]\n'


def found(text: str, rule: str) -> list[int]:
    return [f.line for f in lint_text(text) if f.rule == rule]


def test_rule_table_is_the_designed_one() -> None:
    table = {
        "IMG001": "error", "IMG002": "info", "IMG003": "info", "IMG004": "warning",
        "IMG005": "warning", "IMG006": "warning", "IMG007": "warning", "IMG008": "warning",
        "IMG009": "warning", "IMG010": "info", "IMG011": "info", "IMG012": "warning",
        "IMG013": "warning",
    }  # fmt: skip
    assert {r.id: r.severity.value for r in ALL_RULES} == table
    for rule in ALL_RULES:
        assert rule.check.__doc__ and "Fix" in rule.check.__doc__, rule.id


@pytest.mark.parametrize(
    ("base", "lines"),
    [
        ("ubuntu", [1]),
        ("node:latest", [1]),
        ("python:3.12-slim", []),
        ("alpine@sha256:" + "a" * 64, []),
        ("scratch", []),
        ("${BASE}", []),
    ],
)
def test_img001(base: str, lines: list[int]) -> None:
    assert found(f"ARG BASE\nFROM {base}\n" if "$" in base else f"FROM {base}\n", "IMG001") == [
        line + ("$" in base) for line in lines
    ]


def test_img001_earlier_stage_needs_no_tag() -> None:
    assert found("FROM alpine:3.20 AS build\nFROM build\n", "IMG001") == []


@pytest.mark.parametrize(
    ("base", "hit"),
    [
        ("python:3.12", True),
        ("python:3.12-slim", False),
        ("python:3.12-alpine", False),
        ("node:20-bookworm", True),
        ("debian:12", True),
        ("debian:bookworm-slim", False),
        ("eclipse-temurin:21-jre", True),  # -jre-alpine exists
        ("eclipse-temurin:21-jre-alpine", False),
        ("centos:7", False),  # no small variant of its own
        ("registry.access.redhat.com/ubi9/ubi:9.4", True),
        ("registry.access.redhat.com/ubi9/ubi-minimal:9.4", False),
        ("nginx:1.27", True),  # nginx:1.27-alpine exists
        ("nginx:1.27-alpine", False),
    ],
)
def test_img002(base: str, hit: bool) -> None:
    assert found(f"FROM {base}\n", "IMG002") == ([1] if hit else [])


def test_img002_big_builder_stage_is_fine() -> None:
    assert found("FROM golang:1.22 AS b\nFROM scratch\n", "IMG002") == []


def test_img003_reports_each_following_run_at_its_line() -> None:
    text = "FROM a:1\nRUN a\n# x\nRUN b\nRUN c\nCOPY . .\nRUN d\n"
    findings = [f for f in lint_text(text) if f.rule == "IMG003"]
    assert [(f.line, f.message) for f in findings] == [
        (4, "this RUN directly follows the RUN at line 2: merge them into one layer"),
        (5, "this RUN directly follows the RUN at line 4: merge them into one layer"),
    ]
    assert found("FROM a:1\nRUN a\nRUN --mount=type=cache,target=/x b\n", "IMG003") == []


def test_img004() -> None:
    assert found(
        "FROM a:1\nWORKDIR /t\nRUN wget https://x/a.tgz\nENV X=1\nRUN rm /t/a.tgz\n", "IMG004"
    ) == [5]
    assert found("FROM a:1\nRUN curl -o /a https://x/a && rm /a\n", "IMG004") == []
    assert found("FROM a:1\nRUN wget -O- https://x | sh\nRUN rm -rf /tmp/*\n", "IMG004") == []


def test_img005() -> None:
    assert found(
        "FROM a:1\nRUN apt-get install -y gcc\nENV X=1\nRUN apt-get purge -y gcc\n", "IMG005"
    ) == [4]
    assert found("FROM a:1\nRUN apk add --virtual .d gcc && make && apk del .d\n", "IMG005") == []


def test_img006() -> None:
    assert found("FROM a:1\nRUN apt-get -y install curl\n", "IMG006") == [2]
    assert found("FROM a:1\nRUN apt-get -y install --no-install-recommends curl\n", "IMG006") == []
    assert found(
        "FROM a:1\nRUN DEBIAN_FRONTEND=noninteractive apt-get install -y x\n", "IMG006"
    ) == [2]


def test_img007() -> None:
    assert found("FROM a:1\nRUN dnf install -y httpd && dnf clean all\n", "IMG007") == [2]
    assert (
        found("FROM a:1\nRUN dnf install -y --setopt=install_weak_deps=False x\n", "IMG007") == []
    )
    assert found("FROM a:1\nRUN microdnf install --nodocs x\n", "IMG007") == []


def test_img008() -> None:
    assert found("FROM a:1\nRUN apk add curl\n", "IMG008") == [2]
    assert found("FROM a:1\nRUN apk add --no-cache curl\n", "IMG008") == []
    assert (
        found("FROM a:1\nRUN apt-get install -y x && rm -rf /var/lib/apt/lists/*\n", "IMG008") == []
    )
    assert found("FROM a:1\nRUN yum install -y x\n", "IMG008") == [2]
    assert found("FROM a:1\nRUN yum install -y x && yum clean all\n", "IMG008") == []
    assert (
        found("FROM a:1\nRUN --mount=type=cache,target=/var/cache/apk apk add x\n", "IMG008") == []
    )


def test_img009() -> None:
    assert found("FROM a:1\nRUN useradd -u 1000 app\n", "IMG009") == [2]
    assert found("FROM a:1\nRUN useradd --no-log-init -u 1000 app\n", "IMG009") == []


def test_img010_final_stage_only() -> None:
    assert found("FROM alpine:3.20\nRUN apk add --no-cache gcc\n", "IMG010") == [2]
    text = (
        "FROM alpine:3.20 AS b\nRUN apk add --no-cache gcc\nFROM alpine:3.20\nCOPY --from=b /x /x\n"
    )
    assert found(text, "IMG010") == []


@pytest.mark.parametrize(
    "entrypoint",
    [
        '["tini", "--"]',
        '["/sbin/tini", "--"]',
        '["dumb-init", "--"]',
        '["docker-init"]',
        '["/init"]',
    ],
)
def test_img011_inits(entrypoint: str) -> None:
    assert found(f'FROM a:1\nENTRYPOINT {entrypoint}\nCMD ["app"]\n', "IMG011") == []


def test_img011_applies_to_a_process_only() -> None:
    assert found('FROM scratch\nENTRYPOINT ["/app"]\n', "IMG011") == [2]
    assert found("FROM nginx:1.27\nCOPY x /x\n", "IMG011") == []


@pytest.mark.parametrize(
    ("user", "hit"),
    [
        ("root", True),
        ("0", True),
        ("root:root", True),
        ("0:0", True),
        ("1001", False),
        ("app", False),
    ],
)
def test_img012_user(user: str, hit: bool) -> None:
    assert found(f"FROM a:1\nUSER {user}\n", "IMG012") == ([2] if hit else [])


def test_img012_inherited_user_and_no_user() -> None:
    assert found("FROM a:1 AS b\nUSER 1000\nFROM b\n", "IMG012") == []
    assert found("FROM a:1 AS b\nUSER 1000\nFROM a:1\n", "IMG012") == [3]


def test_img013() -> None:
    assert found("FROM a:1\nCMD python app.py\n", "IMG013") == [2]
    assert found('FROM a:1\nCMD ["python", "app.py"]\n', "IMG013") == []
    assert found('FROM a:1\nCMD /x\nFROM b:1\nCMD ["y"]\n', "IMG013") == []


def test_inline_and_global_ignores() -> None:
    text = "# imgtag global ignore=IMG012\nFROM a:1\n# imgtag ignore=IMG013\nCMD run\nCMD run\n"
    assert [(f.rule, f.line) for f in lint_text(text) if f.rule in ("IMG012", "IMG013")] == [
        ("IMG013", 5)
    ]
    assert found("FROM a:1\n# imgtag ignore=IMG013\n\nCMD run\n", "IMG013") == [4]
    assert lint_text("FROM ubuntu\n", ignore=["img001", "IMG002", "IMG012"]) == []


def test_severities_order_and_findings_carry_a_fix() -> None:
    assert Severity.ERROR > Severity.WARNING > Severity.INFO
    for finding in lint_text("FROM ubuntu\nRUN apt-get install -y gcc\nCMD x\n"):
        assert finding.fix == RULES_BY_ID[finding.rule].fix


def test_final_base_image() -> None:
    df = parse("ARG V=3.12\nFROM python:${V} AS b\nFROM b AS c\nFROM scratch AS s\nFROM c\n")
    assert base_image_of(df) == "python:3.12"
    assert base_image_of(df, {"V": "3.13"}) == "python:3.13"
    assert base_image_of(df, target="s") == "scratch"
    assert base_image_of(parse("ARG B\nFROM ${B}\n")) is None
    assert base_image_of(parse("ARG B\nFROM ${B}\n"), {"B": "alpine:3"}) == "alpine:3"
