"""The Dockerfile parser and the RUN splitter: BuildKit's grammar, and hostile input."""

from __future__ import annotations

import shlex

import pytest

from tagger.errors import UsageError
from tagger.lint import shell
from tagger.lint.facts import run_commands
from tagger.lint.parser import DockerfileError, parse
from tagger.lint.shell import split_commands


def test_continuations_comments_and_empty_lines() -> None:
    df = parse(
        "FROM a:1\nRUN apt-get update \\\n  # c\n  && apt-get install x \\\n\n  && true\nUSER 1\n"
    )
    run = df.instructions[1]
    assert (run.line, run.end_line) == (2, 6)
    assert [c.argv for c in run_commands(run)] == [
        ("apt-get", "update"),
        ("apt-get", "install", "x"),
        ("true",),
    ]
    assert df.instructions[2].line == 7


def test_escape_directive_backtick() -> None:
    df = parse("# escape=`\nFROM w:1\nRUN dir `\n  c:\\\nUSER x\n")
    assert df.escape == "`"
    assert df.instructions[1].text == "dir   c:\\"
    assert df.instructions[2].line == 5


def test_syntax_directive() -> None:
    assert parse("# syntax=docker/dockerfile:1\nFROM a:1\n").syntax == "docker/dockerfile:1"


def test_heredocs_several_quoted_and_copy() -> None:
    df = parse(
        "FROM a:1\nRUN <<-'A' bash\n\techo one\n\tA\nCOPY <<EOF /etc/x\nhi\nEOF\n"
        "RUN cat <<X > /f && apk add y\nx\nX\n"
    )
    run, copy, run2 = df.instructions[1:]
    assert [c.argv for c in run_commands(run)] == [("echo", "one"), ("bash",)]
    assert copy.heredocs[0].content == "hi\n"
    assert copy.line == 5
    assert [c.argv for c in run_commands(run2)] == [("cat",), ("apk", "add", "y")]
    assert run_commands(run2)[0].writes == ("/f",)


def test_arg_before_from_and_stages() -> None:
    df = parse("ARG V=3\nARG R\nFROM ${R:-docker.io}/p:${V} AS Build\nFROM build\n")
    assert df.meta_args == {"V": "3", "R": None}
    assert [(s.base, s.name) for s in df.stages] == [("docker.io/p:3", "build"), ("build", None)]
    assert df.parent_stage(df.final_stage) is df.stages[0]


def test_json_and_shell_forms() -> None:
    df = parse('FROM a:1\nCMD ["a", "b c"]\nENTRYPOINT x y\n')
    assert (df.instructions[1].json, df.instructions[1].args) == (True, ("a", "b c"))
    assert (df.instructions[2].json, df.instructions[2].text) == (False, "x y")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "cannot be parsed"),
        ("RUN x\n", "before the first FROM"),
        ("FROM a\nFOO bar\n", "unknown instruction"),
        ("FROM a AS\n", "FROM needs"),
        ("FROM a\nRUN <<EOF\nnever closed\n", "cannot be parsed"),
        ("FROM a\nRUN echo \x00\n", "NUL"),
        ("FROM a\nRUN " + "x" * 70_000 + "\n", "cannot be parsed"),
        ("# escape=x\nFROM a\n", "escape"),
    ],
)
def test_bad_input_is_a_usage_error(text: str, fragment: str) -> None:
    with pytest.raises(DockerfileError, match=fragment) as info:
        parse(text)
    assert isinstance(info.value, UsageError)


def test_hostile_input_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Work is counted, not timed: the splitter reads shell text only through _tokenize, one
    # pass over what it is given, so the texts it is given bound its work.
    tokenized: list[int] = []
    real_tokenize = shell._tokenize

    def counting_tokenize(text: str) -> list[tuple[str, str]]:
        tokenized.append(len(text))
        return real_tokenize(text)

    monkeypatch.setattr(shell, "_tokenize", counting_tokenize)

    with pytest.raises(DockerfileError, match="larger than"):
        parse("FROM a\n" * 1_000_000)  # > MAX_BYTES: refused before the Go parser runs
    assert tokenized == []

    # sh -c quoted ten levels deep: followed MAX_DEPTH levels down and no further, one pass
    # over each level's text (each a part of the one above).
    script = "x"
    for _ in range(shell.MAX_DEPTH + 2):
        script = "sh -c " + shlex.quote(script)
    (command,) = shell.split_commands(script)
    assert command.program == "sh"  # where the splitter stopped following
    assert len(tokenized) == shell.MAX_DEPTH + 1
    assert sum(tokenized) <= (shell.MAX_DEPTH + 1) * len(script)

    # Unbalanced quotes 50 deep, through the parser: fewer passes still.
    tokenized.clear()
    script = "sh -c '" * 50 + "x" + "'" * 50
    assert run_commands(parse(f"FROM a\nRUN {script}\n").instructions[1])
    assert len(tokenized) <= shell.MAX_DEPTH + 1
    assert sum(tokenized) <= (shell.MAX_DEPTH + 1) * len(script)

    # 5000 nested subshells: one pass, no recursion per parenthesis.
    tokenized.clear()
    script = "(" * 5000 + "true" + ")" * 5000
    commands = run_commands(parse(f"FROM a\nRUN {script}\n").instructions[1])
    assert [c.argv for c in commands] == [("true",)]
    assert tokenized == [len(script)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a && b || c; d | e & f", [("a",), ("b",), ("c",), ("d",), ("e",), ("f",)]),
        ('bash -c "apt-get install -y x"', [("apt-get", "install", "-y", "x")]),
        ("(cd /x && make) && { rm -f y; }", [("cd", "/x"), ("make",), ("rm", "-f", "y")]),
        ("if true; then apk add x; fi", [("true",), ("apk", "add", "x")]),
        ("env -i A=1 sudo -u root pip install x", [("pip", "install", "x")]),
        ("echo 'a && b' \"c;d\" # tail && rm", [("echo", "a && b", "c;d")]),
        ("for p in a b; do rm $p; done", [("rm", "$p")]),
    ],
)
def test_split_commands(text: str, expected: list[tuple[str, ...]]) -> None:
    assert [c.argv for c in split_commands(text)] == expected


def test_wrapper_env_is_kept() -> None:
    command = split_commands("DEBIAN_FRONTEND=noninteractive apt-get -y install x")[0]
    assert command.env == ("DEBIAN_FRONTEND=noninteractive",)
    assert command.has_flag("-y") and not command.has_flag("--no-install-recommends")


def test_lint_package_imports_lean() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tagger.lint, tagger.lint.rules, tagger.lint.report;"
        "bad = [m for m in ('docker', 'requests', 'dockerfile') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
