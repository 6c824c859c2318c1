"""``imgtag release``: cut the version (the annotated tag, CHANGELOG.md, the atomic push).

Two halves. The planner is pure: which version to cut (:func:`plan_version`, pre-releases
included), the release notes grouped the Keep a Changelog way (:func:`release_notes`), and
the CHANGELOG.md edit as a text-to-text function (:func:`edit_changelog`). The executor
(:func:`release`) gathers the facts through ``tagger.version.git`` (the only caller of git),
checks every refusal before anything changes, then commits, tags and pushes, and undoes
its own commit and tag when the push is refused. It does I/O: git, the changelog file,
the notes file.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import semver

from tagger.errors import ImgtagError, RefusedError, UsageError
from tagger.lifecycle import Stop
from tagger.version.bump import (
    Bump,
    ConventionalCommit,
    VersionTag,
    bump_version,
    conventional_bump,
    parse_initial_version,
    version_tags,
)
from tagger.version.git import GitRepo

# --- the version ---------------------------------------------------------------------------

_PRE_IDENT_RE = re.compile(r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)")


def check_prerelease_id(text: str) -> str:
    """``--prerelease ID``: semver pre-release identifiers, to which ``.N`` is appended.

    >>> check_prerelease_id("rc"), check_prerelease_id("beta.x")
    ('rc', 'beta.x')
    >>> check_prerelease_id("rc_1")
    Traceback (most recent call last):
    ValueError: 'rc_1' is not a pre-release identifier such as rc, beta or alpha
    """
    parts = text.split(".")
    if not text or not all(_PRE_IDENT_RE.fullmatch(p) for p in parts):
        raise ValueError(f"{text!r} is not a pre-release identifier such as rc, beta or alpha")
    return text


def _core(version: semver.Version) -> semver.Version:
    return version.replace(prerelease=None, build=None)


def plan_version(
    base: VersionTag | None,
    last_release: VersionTag | None,
    messages: Sequence[str],
    bump: Bump,
    prerelease: str | None,
    initial_version: str,
    existing: Sequence[VersionTag] = (),
) -> semver.Version:
    """The version to cut. Pure.

    ``base`` is the highest version tag reachable from HEAD (it may be a pre-release),
    ``last_release`` the highest full release reachable, ``messages`` the commits since
    ``last_release`` (all of them without one), ``existing`` every version tag of the
    prefix (pre-release numbers count on from the highest one, reachable or not).

    A plain release after pre-releases of X.Y.Z is X.Y.Z, unless the commits since the
    last full release call for more:

    >>> t = lambda text: VersionTag("v" + text, "c", text)
    >>> str(plan_version(t("1.3.0-rc.2"), t("1.2.0"), ["fix: x"], Bump.AUTO, None, "0.1.0"))
    '1.3.0'
    >>> str(plan_version(t("1.3.0-rc.2"), t("1.2.0"), ["feat!: x"], Bump.AUTO, None, "0.1.0"))
    '2.0.0'
    >>> tags = [t("1.3.0-rc.1"), t("1.3.0-rc.2")]
    >>> str(plan_version(t("1.3.0-rc.2"), t("1.2.0"), ["feat: x"], Bump.AUTO, "rc", "0", tags))
    '1.3.0-rc.3'
    >>> str(plan_version(None, None, [], Bump.AUTO, "beta", "0.1.0"))
    '0.1.0-beta.1'
    """
    if base is None:
        core = parse_initial_version(initial_version)
        if prerelease is None:
            return core
        core = _core(core)
    else:
        target: semver.Version | None = None
        if last_release is not None:
            wanted = conventional_bump(messages) if bump is Bump.AUTO else bump
            target = bump_version(_core(last_release.version), wanted)
        if base.version.prerelease is not None:
            pending = _core(base.version)
            target = pending if target is None or pending > target else target
        assert target is not None  # a base is either a release or a pre-release
        core = target
    if prerelease is None:
        return core
    number = re.compile(rf"{re.escape(prerelease)}\.(0|[1-9]\d*)")
    used = [
        int(m[1])
        for tag in existing
        if _core(tag.version) == core and (m := number.fullmatch(str(tag.version.prerelease or "")))
    ]
    return core.replace(prerelease=f"{prerelease}.{max(used, default=0) + 1}")


def tag_prefix_for(prefix: str | None, base: VersionTag | None) -> str:
    """The prefix of the new tag: the one given, else the one the base tag uses, else ``v``.

    >>> tag_prefix_for(None, VersionTag("1.2.3", "c", "1.2.3")), tag_prefix_for(None, None)
    ('', 'v')
    >>> tag_prefix_for("api/v", None)
    'api/v'
    """
    if prefix is not None:
        return prefix
    if base is None:
        return "v"
    return base.name[: len(base.name) - len(base.text)]


# --- the notes -----------------------------------------------------------------------------

BREAKING = "Breaking changes"
#: Conventional Commits type → Keep a Changelog heading; other types are left out.
GROUPS: Mapping[str, str] = {
    "feat": "Added",
    "fix": "Fixed",
    "perf": "Changed",
    "refactor": "Changed",
}
#: Headings in Keep a Changelog's order, breaking changes first.
HEADING_ORDER = (BREAKING, "Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")
NO_CHANGES = "No notable changes."


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    message: str


def release_notes(commits: Sequence[Commit]) -> str:
    """The release notes: ``### Heading`` groups of ``- subject (short hash)`` lines. Pure.

    Breaking changes (``!`` or ``BREAKING CHANGE:``) come first and only there; chores,
    docs, tests and free-text commits are left out.

    >>> print(release_notes([Commit("a" * 40, "fix(ui): x"), Commit("b" * 40, "feat!: y"),
    ...                      Commit("c" * 40, "docs: z"), Commit("d" * 40, "perf: w")]), end="")
    ### Breaking changes
    - y (bbbbbbb)
    <BLANKLINE>
    ### Changed
    - w (ddddddd)
    <BLANKLINE>
    ### Fixed
    - ui: x (aaaaaaa)
    """
    groups: dict[str, list[str]] = {}
    for commit in commits:
        cc = ConventionalCommit.parse(commit.message)
        heading = BREAKING if cc.breaking else GROUPS.get(cc.type or "")
        if heading is None:
            continue
        text = f"{cc.scope}: {cc.subject}" if cc.scope else cc.subject
        groups.setdefault(heading, []).append(f"- {text} ({commit.sha[:7]})")
    if not groups:
        return NO_CHANGES + "\n"
    blocks = [f"### {h}\n" + "\n".join(groups[h]) + "\n" for h in HEADING_ORDER if h in groups]
    return "\n".join(blocks)


# --- the changelog -------------------------------------------------------------------------

_UNRELEASED_RE = re.compile(r"##[ \t]+\[?unreleased\]?\b", re.IGNORECASE)
_VERSION_SECTION_RE = re.compile(r"##[ \t]+\[?v?\d+\.\d+")
_FENCE_RE = re.compile(r"(```|~~~)")

CHANGELOG_HEADER = """# Changelog

All notable changes to this project are documented here. The format follows
[Keep a Changelog](https://keepachangelog.com/en/1.1.0/), and the project uses
[Semantic Versioning](https://semver.org/).

## [Unreleased]
"""


def _level2_headings(lines: Sequence[str]) -> list[int]:
    """Indexes of the ``## `` lines outside fenced code blocks."""
    found: list[int] = []
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE_RE.match(line.lstrip()):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            found.append(i)
    return found


def merge_entries(notes: str, entries: str) -> str:
    """The body of a new version section: the hand-written ``entries`` of ``[Unreleased]``
    merged into the generated ``notes`` under one heading each. Pure.

    Text before the first ``###`` heading of ``entries`` stays first; under a heading both
    have, the hand-written lines come first; headings follow Keep a Changelog's order.

    >>> print(merge_entries("### Added\\n- x (abc1234)\\n", "### Added\\n- Docs site.\\n"), end="")
    ### Added
    - Docs site.
    - x (abc1234)
    """
    if not entries.strip():
        return notes
    lead, hand = _split_groups(entries)
    _, generated = _split_groups("" if notes.strip() == NO_CHANGES else notes)
    order: list[str] = []
    merged: dict[str, list[str]] = {}
    titles: dict[str, str] = {}
    for groups in (hand, generated):
        for title, lines in groups:
            key = title.lower()
            titles.setdefault(key, title)
            if key not in merged:
                merged[key] = []
                order.append(key)
            merged[key].extend(lines)
    rank = {h.lower(): i for i, h in enumerate(HEADING_ORDER)}
    order.sort(key=lambda k: rank.get(k, len(rank)))  # stable: unknown ones keep their order
    blocks = ["\n".join(lead).strip("\n") + "\n"] if any(x.strip() for x in lead) else []
    blocks += [f"### {titles[k]}\n" + "\n".join(merged[k]) + "\n" for k in order]
    return "\n".join(blocks)


def _split_groups(body: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    lead: list[str] = []
    groups: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("### "):
            groups.append((line[4:].strip(), []))
        elif groups:
            groups[-1][1].append(line)
        else:
            lead.append(line)
    trimmed = [(title, _trim(lines)) for title, lines in groups]
    return lead, [(title, lines) for title, lines in trimmed if lines]


def _trim(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def edit_changelog(text: str | None, version: str, date: str, notes: str) -> str:
    """CHANGELOG.md with a new ``## [VERSION] - DATE`` section. Pure: text in, text out.

    - Below ``## [Unreleased]``, whose entries move into the new section (merged with
      ``notes``); ``[Unreleased]`` stays, empty.
    - Without ``[Unreleased]``: above the first version section, else below the title and
      its introduction, else at the top.
    - ``None`` (no file yet): a new Keep a Changelog file.

    Everything from the next section on is kept byte for byte, line endings included.

    >>> old = ("# Changelog\\n\\n## [Unreleased]\\n\\n### Fixed\\n- Typo.\\n\\n"
    ...        "## [1.0.0] - 2024-01-01\\n")
    >>> print(edit_changelog(old, "1.1.0", "2024-02-01", "### Added\\n- x (abc1234)\\n"), end="")
    # Changelog
    <BLANKLINE>
    ## [Unreleased]
    <BLANKLINE>
    ## [1.1.0] - 2024-02-01
    <BLANKLINE>
    ### Added
    - x (abc1234)
    <BLANKLINE>
    ### Fixed
    - Typo.
    <BLANKLINE>
    ## [1.0.0] - 2024-01-01
    """
    if text is None:
        text = CHANGELOG_HEADER
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    headings = _level2_headings([line.rstrip("\r\n") for line in lines])
    unreleased = next((i for i in headings if _UNRELEASED_RE.match(lines[i])), None)
    entries = ""
    if unreleased is not None:
        following = [i for i in headings if i > unreleased]
        end = following[0] if following else len(lines)
        entries = "".join(line.rstrip("\r\n") + "\n" for line in lines[unreleased + 1 : end])
        head = lines[: unreleased + 1]
        tail = lines[end:]
    else:
        versions = [i for i in headings if _VERSION_SECTION_RE.match(lines[i])]
        if versions:
            at = versions[0]
        elif lines and lines[0].startswith("# "):
            at = headings[0] if headings else len(lines)
        else:
            at = 0
        head, tail = lines[:at], lines[at:]
    body = merge_entries(notes, entries)
    section = f"## [{version}] - {date}\n\n{body}"
    parts = [] if not head else ["".join(head)]
    if head:
        if not parts[0].endswith(("\n", "\r")):
            parts.append(newline)
        if "".join(head).strip() and not "".join(head).endswith(("\n\n", "\r\n\r\n")):
            parts.append(newline)
    parts.append(section.replace("\n", newline))
    if tail:
        parts.append(newline)
        parts.append("".join(tail))
    return "".join(parts)


def changelog_section(text: str, version: str) -> bool:
    """Whether ``text`` has a section for ``version`` (``## [1.2.3]`` or ``## 1.2.3``)."""
    pattern = re.compile(rf"^##[ \t]+\[?v?{re.escape(version)}\]?(?:[ \t]|$)", re.MULTILINE)
    return pattern.search(text) is not None


# --- options and results -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReleaseOptions:
    """The resolved options of ``imgtag release``."""

    repo: str = "."
    tag_prefix: str | None = None
    bump: Bump = Bump.AUTO
    initial_version: str = "0.1.0"
    prerelease: str | None = None
    changelog: bool = True
    changelog_file: str = "CHANGELOG.md"
    push: bool = False
    remote: str | None = None  # None: origin, asked only when it exists
    dry_run: bool = False
    notes_file: str | None = None

    @classmethod
    def resolve(cls, given: Mapping[str, Any]) -> ReleaseOptions:
        """Option > ``IMGTAG_*`` variable > config file > default, for the version options
        shared with ``next`` (their config keys are ``next``'s); the rest as given."""
        from tagger import config

        repo = given.get("repo") or "."
        shared = {k: given.get(k) for k in ("tag_prefix", "bump", "initial_version")}
        values = config.load(repo).resolve(
            "", shared, {"tag_prefix": None, "bump": Bump.AUTO, "initial_version": "0.1.0"}
        )
        rest = {k: v for k, v in given.items() if k not in shared and v is not None}
        return replace(
            cls(),
            **{
                **rest,
                "repo": repo,
                "tag_prefix": values["tag_prefix"],
                "bump": Bump(values["bump"]),
                "initial_version": values["initial_version"],
            },
        )


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    """What ``imgtag release`` did, would do (dry run), or found already done."""

    version: str
    tag: str
    previous_tag: str | None
    commit: str | None  # None on a dry run that would make the release commit
    notes: str
    changelog: str | None  # the changelog file, relative to the repository root
    pushed: bool
    status: str  # "released", "dry-run" or "already-released"
    remote: str | None = None
    branch: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The json document; the first seven keys are fixed by the contract."""
        return {
            "version": self.version,
            "tag": self.tag,
            "previous_tag": self.previous_tag,
            "commit": self.commit,
            "notes": self.notes,
            "changelog": self.changelog,
            "pushed": self.pushed,
            "status": self.status,
            "remote": self.remote,
            "branch": self.branch,
        }

    def as_text(self) -> str:
        """The human report on stdout (first line: what happened to which tag)."""
        short = self.commit[:7] if self.commit else None
        if self.status == "already-released":
            return f"{self.tag} is already released at {short}: nothing to do.\n"
        lines = []
        since = f" (previous: {self.previous_tag})" if self.previous_tag else ""
        if self.status == "dry-run":
            lines.append(f"Would release {self.tag}{since}; nothing was changed.")
            if self.changelog:
                lines.append(f"{self.changelog}: would add [{self.version}].")
        else:
            lines.append(f"Released {self.tag}{since} at {short}.")
            if self.changelog:
                lines.append(f"{self.changelog}: added [{self.version}].")
            if self.pushed:
                lines.append(f"Pushed {self.branch} and {self.tag} to {self.remote}.")
        return "\n".join(lines) + "\n\n" + self.notes


# --- the executor --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Checked:
    """The input checked before git is touched."""

    changelog_path: Path | None
    changelog_rel: str | None  # as the json reports it: relative to the repository root
    notes_path: Path | None


def release(options: ReleaseOptions, now: datetime, stop: Stop | None = None) -> ReleaseResult:
    """Cut the release for the checkout at ``options.repo``. ``now`` is in UTC.

    Every refusal and every piece of bad input is found before anything changes; after the
    first change, a failure undoes what this run did (never half-released). A signal
    (``stop``) before the push undoes the same way; once the push has begun it is finished,
    so the local repository and the remote never disagree about the release.
    """
    if options.prerelease is not None:
        try:
            check_prerelease_id(options.prerelease)
        except ValueError as exc:
            raise UsageError(f"--prerelease: {exc}") from exc
    try:
        parse_initial_version(options.initial_version)
    except ValueError as exc:
        raise UsageError(f"--initial-version: {exc}") from exc

    repo = GitRepo.open(options.repo)
    checked = _check_paths(options, repo.root)
    remote = _pick_remote(repo, options)
    tags = repo.tags()
    prefix = options.tag_prefix

    at_head = [t for t in version_tags(tags, prefix) if t.commit == repo.head]
    if options.prerelease is None:
        at_head = [t for t in at_head if t.version.prerelease is None]
    if at_head:
        return _already_released(repo, at_head[0], options, checked, tags)

    if repo.is_dirty():
        raise RefusedError(
            f"the work tree of {repo.root} has uncommitted changes: commit or stash them "
            "before releasing"
        )
    branch = repo.branch()
    if options.push and branch is None:
        raise UsageError(
            "HEAD is detached, so there is no branch to push: check out the branch to "
            "release (e.g. git checkout -B main origin/main)"
        )

    found = repo.find_base(prefix, tags=tags)
    base = found.tag if found is not None else None
    last = repo.find_base(prefix, lambda t: t.version.prerelease is None, tags=tags)
    last_release = last.tag if last is not None else None
    since_release = repo.commits(last_release.commit if last_release else None)
    version = plan_version(
        base,
        last_release,
        [message for _, message in since_release],
        options.bump,
        options.prerelease,
        options.initial_version,
        version_tags(tags, prefix),
    )
    # A pre-release's notes start at the previous tag of any kind; a release's at the last
    # release, so that they cover its pre-releases too.
    previous = base if options.prerelease is not None else last_release
    if previous is not None and previous != last_release:
        notes_commits = repo.commits(previous.commit)
    else:
        notes_commits = since_release
    notes = release_notes([Commit(sha, message) for sha, message in notes_commits])
    version_text = str(version)
    tag = tag_prefix_for(prefix, base) + version_text

    if tag in tags:
        raise RefusedError(f"the tag {tag} already exists here: it is never moved or reused")
    if base is not None and base.precedence() >= VersionTag(tag, "", version_text).precedence():
        raise UsageError(
            f"{version_text} would sort below {base.name}, the highest release tag HEAD "
            "reaches: choose another --prerelease or --bump"
        )
    if remote is not None:
        _check_remote(repo, remote, tag, branch if options.push else None)
    if not options.dry_run and not repo.has_identity():
        raise UsageError(
            "git does not know who makes the release commit and tag: set git config "
            "user.name and user.email"
        )

    changelog_rel = checked.changelog_rel
    if options.dry_run:
        return ReleaseResult(
            version_text,
            tag,
            previous.name if previous else None,
            None if checked.changelog_path is not None else repo.head,
            notes,
            changelog_rel,
            False,
            "dry-run",
            remote,
            branch,
        )

    start = repo.head
    undo = _Undo(repo, start)
    try:
        if checked.changelog_path is not None:
            undo.changelog = checked.changelog_path
            undo.original = _write_changelog(checked.changelog_path, version_text, now, notes)
            repo.commit_file(checked.changelog_path, f"chore(release): {version_text}")
            undo.committed = True
        repo.create_tag(tag, notes, repo.head)
        undo.tag = tag
        pushed = False
        if options.push:
            assert remote is not None and branch is not None
            with stop.shielded() if stop is not None else contextlib.nullcontext():
                result = repo.push_atomic(remote, branch, tag)
            if not result.ok:
                reason = _push_reason(result.stdout, result.stderr)
                raise RefusedError(
                    f"the push to {remote} was refused ({reason}): the local tag and release "
                    "commit were undone; pull, then release again"
                )
            pushed = True
    except BaseException:
        undo.run()
        raise
    if checked.notes_path is not None:
        _write_notes(checked.notes_path, notes)
    return ReleaseResult(
        version_text,
        tag,
        previous.name if previous else None,
        repo.head,
        notes,
        changelog_rel,
        pushed,
        "released",
        remote,
        branch,
    )


def _check_paths(options: ReleaseOptions, root: Path) -> _Checked:
    changelog: Path | None = None
    rel: str | None = None
    top = root.resolve()
    if options.changelog:
        given = Path(options.changelog_file)
        changelog = (given if given.is_absolute() else top / given).resolve()
        if top not in changelog.parents:
            raise UsageError(
                f"--changelog-file: {options.changelog_file} is outside the repository at "
                f"{root}, so it cannot be committed"
            )
        if changelog.is_dir() or not changelog.parent.is_dir():
            raise UsageError(
                f"--changelog-file: {options.changelog_file} is not a file in an existing "
                "directory of the repository"
            )
        rel = changelog.relative_to(top).as_posix()
    notes: Path | None = None
    if options.notes_file is not None:
        notes = Path(options.notes_file).absolute()
        parent = notes.parent
        if notes.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(
                f"--notes-file: cannot write {options.notes_file} (its directory must exist "
                "and be writable)"
            )
        if notes.exists() and not os.access(notes, os.W_OK):
            raise UsageError(f"--notes-file: {options.notes_file} is not writable")
    return _Checked(changelog, rel, notes)


def _pick_remote(repo: GitRepo, options: ReleaseOptions) -> str | None:
    """The remote to ask and push to: ``--remote`` (must exist), else ``origin`` when it
    exists; ``--push`` needs one."""
    remotes = repo.remotes()
    name = options.remote or "origin"
    if name in remotes:
        return name
    if options.remote is not None or options.push:
        known = ", ".join(remotes) if remotes else "none"
        raise UsageError(
            f"--remote: this repository has no remote named {name} (its remotes: {known})"
        )
    return None


def _check_remote(repo: GitRepo, remote: str, tag: str, branch: str | None) -> None:
    """Refuse when the tag exists on the remote, or (pushing) when its branch moved."""
    refs = [f"refs/tags/{tag}"] + ([f"refs/heads/{branch}"] if branch else [])
    found = repo.ls_remote(remote, refs)
    if f"refs/tags/{tag}" in found:
        raise RefusedError(
            f"the tag {tag} already exists on {remote}: fetch its tags (git fetch --tags) "
            "and release from there"
        )
    there = found.get(f"refs/heads/{branch}") if branch else None
    if there is not None and not repo.is_ancestor(there, repo.head):
        raise RefusedError(
            f"the branch {branch} on {remote} moved (it is at {there[:7]}, which this "
            "checkout does not contain): pull, then release again"
        )


def _write_changelog(path: Path, version: str, now: datetime, notes: str) -> bytes | None:
    """Write the edited changelog; return what was there before (``None``: no file)."""
    original = path.read_bytes() if path.exists() else None
    try:
        old = original.decode("utf-8") if original is not None else None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text, so it cannot be edited") from exc
    path.write_bytes(edit_changelog(old, version, now.strftime("%Y-%m-%d"), notes).encode())
    return original


def _write_notes(path: Path, notes: str) -> None:
    path.write_text(notes, encoding="utf-8")


class _Undo:
    """What this run changed so far, and how to take it back (never half-released)."""

    def __init__(self, repo: GitRepo, start: str) -> None:
        self.repo = repo
        self.start = start
        self.changelog: Path | None = None
        self.original: bytes | None = None
        self.committed = False
        self.tag: str | None = None

    def run(self) -> None:
        """Best effort: a failure here must not hide the one that made us undo."""
        try:
            if self.tag is not None:
                self.repo.delete_tag(self.tag)
            if self.committed:
                self.repo.reset_to(self.start)
            elif self.changelog is not None:
                # Written (maybe staged) but not committed: index and file as they were.
                self.repo.reset_path(self.changelog)
                if self.original is None:
                    self.changelog.unlink(missing_ok=True)
                else:
                    self.changelog.write_bytes(self.original)
        except (ImgtagError, OSError):
            pass


def _push_reason(stdout: str, stderr: str) -> str:
    """git's own reason in one short phrase (``--porcelain`` lines start with ``!``)."""
    for line in stdout.splitlines():
        if line.startswith("!"):
            return line.split("\t")[-1].strip() or "rejected"
    for line in stderr.splitlines():
        text = line.strip().removeprefix("error: ").removeprefix("fatal: ")
        if text and not text.startswith("To "):
            return text
    return "rejected"


def _already_released(
    repo: GitRepo,
    existing: VersionTag,
    options: ReleaseOptions,
    checked: _Checked,
    tags: dict[str, str],
) -> ReleaseResult:
    """HEAD carries the release already: describe it, change nothing (a CI re-run)."""
    rank = existing.precedence()
    is_release = existing.version.prerelease is None

    def earlier(t: VersionTag) -> bool:
        return t.precedence() < rank and (t.version.prerelease is None or not is_release)

    prior = repo.find_base(options.tag_prefix, earlier, tags=tags)
    changelog: str | None = None
    version_text = str(existing.version.replace(build=None))
    if checked.changelog_path is not None and checked.changelog_path.is_file():
        text = checked.changelog_path.read_text(encoding="utf-8", errors="replace")
        if changelog_section(text, version_text):
            changelog = checked.changelog_rel
    return ReleaseResult(
        version_text,
        existing.name,
        prior.tag.name if prior is not None else None,
        repo.head,
        repo.tag_message(existing.name) or "",
        changelog,
        False,
        "already-released",
        None,
        repo.branch(),
    )
