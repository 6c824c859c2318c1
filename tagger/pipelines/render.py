"""The CI templates of ``ci-templates/`` and their rendering for ``imgtag ci``.

Pure, except :func:`read_template`, which reads one packaged template file. Rendering
replaces only the values of lines that carry a marker comment, ``# imgtag: image`` (YAML)
or ``// imgtag: image`` (Jenkinsfile), for the three marked values:

- ``image``: the IMAGE the pipeline builds and prunes (``--image``);
- ``registry``: the registry host the credentials are for (derived from ``--image``);
- ``install``: the pip requirement in ``IMGTAG_INSTALL`` (this version of imgtag).

Everything else (``${{ github.x }}``, ``$CI_*``, ``$(params.x)``, ``<< pipeline.x >>``,
``uses: x@v4``) is copied byte for byte, so a rendered file differs from the raw one only
on marked lines, and the raw file works when copied by hand.

The templates live in ``ci-templates/`` of the source tree (the single source) and are
shipped inside the package as ``tagger/ci_templates/`` (``docs/architecture.md``,
"Packaging the CI templates"); both places are looked up, the packaged one first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from tagger import __version__
from tagger.errors import UsageError
from tagger.registry.reference import Reference

#: The distribution name on PyPI (``imgtag`` belongs to an unrelated project).
DISTRIBUTION = "imgtag-release"

#: Provider name → template path under ``ci-templates/``.
PROVIDERS: Mapping[str, str] = {
    "github": "github/imgtag.yml",
    "gitlab": "gitlab/gitlab-ci.yml",
    "jenkins": "jenkins/Jenkinsfile",
    "circleci": "circleci/config.yml",
    "azure": "azure/azure-pipelines.yml",
    "bitbucket": "bitbucket/bitbucket-pipelines.yml",
    "tekton": "tekton/imgtag.yaml",
    "kubernetes": "kubernetes/prune-cronjob.yaml",
}

#: What to do with each rendered file (said on stderr after writing it).
NEXT_STEP: Mapping[str, str] = {
    "github": "commit it as .github/workflows/imgtag.yml",
    "gitlab": "commit it as .gitlab-ci.yml",
    "jenkins": "commit it as Jenkinsfile",
    "circleci": "commit it as .circleci/config.yml",
    "azure": "commit it as azure-pipelines.yml",
    "bitbucket": "commit it as bitbucket-pipelines.yml",
    "tekton": "apply it with kubectl apply -f",
    "kubernetes": "apply it with kubectl apply -f",
}

MARKED_VALUES = ("image", "registry", "install")

_MARKER_RE = re.compile(r"\s+(?:#|//) imgtag: (?P<name>[a-z]+)[ \t]*$")
# A marked value is, in this order: the default of a shell `${NAME:-value}`, else the
# last quoted string before the marker. A marked line without either is a broken template.
_SHELL_DEFAULT_RE = re.compile(r"(\$\{[A-Za-z_][A-Za-z0-9_]*:-)(?P<value>[^}]*)(\})")
_QUOTED_RE = re.compile(r"(?P<q>[\"'])(?P<value>[^\"']*)(?P=q)")
# Characters that could end the quoted value or be expanded inside it in any template.
_UNSAFE_VALUE_RE = re.compile(r"[\"'`\\$}{\n\r]")

_PACKAGED_DIR = "ci_templates"
_CHECKOUT_DIR = Path(__file__).resolve().parents[2] / "ci-templates"


class TemplateError(Exception):
    """A template breaks the marker rules: a bug in imgtag, not bad user input."""


@dataclass(frozen=True, slots=True)
class Values:
    """What rendering puts on the marked lines; ``None`` keeps the raw file's value."""

    image: str | None = None
    registry: str | None = None
    install: str | None = None

    def get(self, name: str) -> str | None:
        value: str | None = getattr(self, name)
        return value


def default_install() -> str:
    """The default ``IMGTAG_INSTALL``: this distribution pinned to this version.

    >>> default_install().startswith("imgtag-release==")
    True
    """
    return f"{DISTRIBUTION}=={__version__}"


def known_providers() -> str:
    """The provider names, comma-separated, for messages.

    >>> known_providers()
    'github, gitlab, jenkins, circleci, azure, bitbucket, tekton, kubernetes'
    """
    return ", ".join(PROVIDERS)


def values_for(image: str | None, install: str | None = None) -> Values:
    """Check the user's ``--image`` and ``--install`` and derive the marked values.

    ``image`` is ``[registry/]path`` as ``imgtag build-push`` takes it; its registry
    host becomes the ``registry`` value. Invalid input raises :class:`UsageError` (exit 2).

    >>> values_for("registry.example.com/team/app").registry
    'registry.example.com'
    >>> values_for("team/app").registry
    'docker.io'
    >>> values_for(None).install == default_install()
    True
    """
    registry = None
    if image is not None:
        registry = Reference.parse_repository(image).registry
        # The reference grammar admits no quote or `$`, but say so rather than assume it.
        _check_safe(image, "--image")
    if install is not None:
        if not install.strip():
            raise UsageError("--install is empty; give a pip requirement, a path or a URL")
        _check_safe(install, "--install")
    return Values(image=image, registry=registry, install=install or default_install())


def _check_safe(value: str, option: str) -> None:
    bad = _UNSAFE_VALUE_RE.search(value)
    if bad is not None:
        raise UsageError(
            f"{option} {value!r} contains {bad.group()!r}, which cannot be put in a CI "
            "file safely; remove it"
        )


def template_path(provider: str) -> str:
    """The template's path under ``ci-templates/``; an unknown provider is exit 2.

    >>> template_path("gitlab")
    'gitlab/gitlab-ci.yml'
    """
    try:
        return PROVIDERS[provider]
    except KeyError:
        raise UsageError(
            f'unknown CI provider "{provider}"; choose one of: {known_providers()}'
        ) from None


def _template_file(relative: str) -> Traversable:
    packaged = resources.files("tagger").joinpath(_PACKAGED_DIR, *relative.split("/"))
    if packaged.is_file():
        return packaged
    checkout = _CHECKOUT_DIR.joinpath(*relative.split("/"))
    if checkout.is_file():
        return checkout
    raise TemplateError(
        f"the template {relative} is neither in the installed package "
        f"({_PACKAGED_DIR}/) nor in a source checkout ({_CHECKOUT_DIR}); "
        "reinstall imgtag"
    )


def read_template(provider: str) -> str:
    """The raw text of ``provider``'s template (I/O: reads one file)."""
    return _template_file(template_path(provider)).read_text(encoding="utf-8")


def marked_lines(text: str) -> list[tuple[int, str]]:
    """``(line index, marker name)`` for every marked line of ``text``.

    >>> marked_lines('a: 1\\nIMAGE: "x"  # imgtag: image\\n')
    [(1, 'image')]
    """
    found = []
    for index, line in enumerate(text.splitlines()):
        match = _MARKER_RE.search(line)
        if match is not None:
            found.append((index, match.group("name")))
    return found


def _replace_value(line: str, value: str) -> str:
    match = _MARKER_RE.search(line)
    assert match is not None
    head, tail = line[: match.start()], line[match.start() :]
    defaults = list(_SHELL_DEFAULT_RE.finditer(head))
    if defaults:
        last = defaults[-1]
    else:
        quoted = list(_QUOTED_RE.finditer(head))
        if not quoted:
            raise TemplateError(f"a marked line has no quoted value: {line.strip()!r}")
        last = quoted[-1]
    start, end = last.span("value")
    return head[:start] + value + head[end:] + tail


def render(text: str, values: Values) -> str:
    """``text`` with the values of its marked lines replaced by ``values``.

    Only marked lines change; line endings are kept.

    >>> print(render('IMAGE: "$CI_REGISTRY_IMAGE"  # imgtag: image\\nX: "${{ a }}"\\n',
    ...              Values(image="reg.example/app")), end="")
    IMAGE: "reg.example/app"  # imgtag: image
    X: "${{ a }}"
    >>> render("export I=\\"${I:-a==1}\\"  # imgtag: install", Values(install="b==2"))
    'export I="${I:-b==2}"  # imgtag: install'
    """
    lines = text.splitlines(keepends=True)
    for index, name in marked_lines(text):
        if name not in MARKED_VALUES:
            raise TemplateError(f"unknown marker 'imgtag: {name}' on line {index + 1}")
        value = values.get(name)
        if value is None:
            continue
        line = lines[index]
        body = line.rstrip("\r\n")
        lines[index] = _replace_value(body, value) + line[len(body) :]
    return "".join(lines)


def render_provider(provider: str, values: Values) -> str:
    """Read ``provider``'s template and render it (I/O: reads the template)."""
    return render(read_template(provider), values)
