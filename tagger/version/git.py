"""The git facts a version is derived from. Does I/O: runs ``git`` through ``tagger.proc``.

This is the only module that talks to git. It calls the git CLI rather than GitPython:
importing GitPython alone costs more than setuptools-scm's whole run in ``imgtag next``'s
benchmark (figures in ``benchmarks/README.md``, "Measurements behind design choices"),
and one ``git`` process per question keeps ``imgtag next`` at a few git calls on a
10,000-tag repository:

1. ``rev-parse``: work tree, shallow or not, HEAD;
2. ``show-ref``: every tag with the commit it points at;
3. ``rev-list --left-right --count``: is the highest tag an ancestor, and how far back;
   only when it is not, one ``for-each-ref --merged HEAD`` finds the reachable ones; in a
   shallow clone, ``ls-remote --tags`` asks the remote for a higher tag beyond the cut;
4. ``rev-list --count`` only when no version tag is reachable (the distance from the
   root), and ``log`` only for ``--bump auto``;
5. ``status``: dirty or not.

``imgtag release`` asks a few more questions (the branch, the remote's refs, the commits
with their hashes) and makes the only changes imgtag ever makes to a repository: the
release commit, the annotated tag, the atomic push, and their undoing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tagger.errors import GitError, NoCommitsError, NotARepositoryError, ShallowCloneError
from tagger.proc import ProgramNotFound, Result, Runner
from tagger.version.bump import VersionTag, version_tags


@dataclass(frozen=True, slots=True)
class BaseTag:
    """The base tag found for HEAD and how many commits HEAD is past it."""

    tag: VersionTag
    distance: int


class GitRepo:
    """A git work tree, opened at any path inside it."""

    def __init__(self, root: Path, head: str, shallow: bool, runner: Runner) -> None:
        self.root = root
        self.head = head
        self.shallow = shallow
        self._runner = runner

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], runner: Runner | None = None) -> GitRepo:
        """Open the repository that contains ``path``; exit-4 errors say what to do."""
        # No credential prompts: `ls-remote` (shallow clones only) must fail, not hang.
        runner = runner or Runner({"GIT_TERMINAL_PROMPT": "0"})
        shown = str(path)
        if not Path(path).is_dir():
            raise NotARepositoryError(f"{shown} is not a directory, so it holds no git repository")
        res = _git(runner, path, "rev-parse", "--show-toplevel", "--is-shallow-repository", "HEAD")
        if res.ok:
            root, shallow, head = res.stdout.splitlines()[:3]
            return cls(Path(root), head, shallow == "true", runner)
        _raise_for_ownership(res, shown)
        # Only on failure: ask again to tell "not a repository" from "no commits yet".
        probe = _git(runner, path, "rev-parse", "--show-toplevel")
        _raise_for_ownership(probe, shown)
        if not probe.ok:
            if "must be run in a work tree" in probe.stderr:
                raise NotARepositoryError(
                    f"{shown} is a bare repository: run imgtag in a checkout (a work tree)"
                )
            if "not a git repository" in probe.stderr:
                raise NotARepositoryError(
                    f"{shown} is not inside a git repository: run imgtag in a git checkout "
                    "or pass --repo PATH"
                )
            raise GitError(f"git cannot read {shown}: {_first_line(probe.stderr)}")
        raise NoCommitsError(
            f"the repository at {probe.stdout.strip()} has no commits yet: commit something "
            "before deriving a version"
        )

    # -- questions -----------------------------------------------------------------------

    def tags(self) -> dict[str, str]:
        """Every tag name with the commit it points at (annotated tags peeled).

        ``show-ref -d`` reads the peeled values git keeps in ``packed-refs``; a
        ``for-each-ref`` format with ``%(*objectname)`` opens every tag object instead,
        several times slower on many tags (``benchmarks/README.md``).
        """
        res = _git(self._runner, self.root, "show-ref", "--tags", "-d")
        if res.returncode == 1 and not res.stdout:
            return {}  # show-ref's way of saying "no tags"
        if not res.ok:
            raise GitError(f"git show-ref failed in {self.root}: {_first_line(res.stderr)}")
        tags: dict[str, str] = {}
        for line in res.stdout.splitlines():
            sha, _, name = line.partition(" refs/tags/")
            if name.endswith("^{}"):
                tags[name[:-3]] = sha  # the commit under an annotated tag
            else:
                tags.setdefault(name, sha)
        return tags

    def find_base(
        self,
        prefix: str | None,
        accept: Callable[[VersionTag], bool] | None = None,
        tags: dict[str, str] | None = None,
    ) -> BaseTag | None:
        """The highest ``prefix + semver`` tag reachable from HEAD, by precedence.

        Not the nearest one (``git describe``) and not the newest by date: a tag on
        another branch is skipped, a higher one further back wins. ``accept`` narrows
        the candidates (``imgtag release``: full releases only); ``tags`` saves asking
        git again for the tag list.
        """
        candidates = version_tags(self.tags() if tags is None else tags, prefix)
        if accept is not None:
            candidates = [c for c in candidates if accept(c)]
        base = self._highest_reachable(candidates)
        if self.shallow:
            self._refuse_hidden_tags(base, candidates, prefix)
        return base

    def _highest_reachable(self, candidates: Sequence[VersionTag]) -> BaseTag | None:
        if not candidates:
            return None
        top = candidates[0]
        counts = self._left_right(top.commit)
        if counts is not None and counts[0] == 0:
            return BaseTag(top, counts[1])
        # The top tag is on another branch (or on a tree or blob, as the kernel's v2.6.11
        # is): let git compute reachability for all tags at once rather than one by one.
        reachable = set(
            self._git(
                "for-each-ref", "--merged", self.head, "refs/tags", "--format=%(refname:lstrip=2)"
            ).stdout.splitlines()
        )
        for candidate in candidates:
            if candidate.name in reachable:
                counts = self._left_right(candidate.commit)
                if counts is not None:
                    return BaseTag(candidate, counts[1])
        return None

    def commit_messages(self, since: str) -> list[str]:
        """Full messages of the commits in ``since..HEAD``."""
        out = self._git("log", "--format=%B%x00", f"{since}..{self.head}").stdout
        return [m.strip() for m in out.split("\0") if m.strip()]

    def commits(self, since: str | None) -> list[tuple[str, str]]:
        """``(hash, full message)`` of the commits in ``since..HEAD`` (all of HEAD's
        history when ``since`` is ``None``), oldest first."""
        revs = [f"{since}..{self.head}"] if since else [self.head]
        out = self._git("log", "--reverse", "--format=%H%x00%B%x00", *revs).stdout
        parts = out.split("\0")
        return [
            (sha.strip(), message.strip())
            for sha, message in zip(parts[0::2], parts[1::2], strict=False)
            if sha.strip()
        ]

    def count_commits(self) -> int:
        """Commits reachable from HEAD (the distance from the root)."""
        if self.shallow:
            raise ShallowCloneError(
                "this clone is shallow, so the number of commits since the root is unknown: "
                "fetch the whole history (git fetch --unshallow, or fetch-depth: 0 on "
                "actions/checkout, GIT_DEPTH: 0 on GitLab)"
            )
        return int(self._git("rev-list", "--count", self.head).stdout.strip())

    def is_dirty(self) -> bool:
        """Uncommitted changes to tracked files (untracked files do not count, as in
        ``git describe --dirty`` and setuptools-scm)."""
        out = self._git("status", "--porcelain", "--untracked-files=no").stdout
        return bool(out.strip())

    def branch(self) -> str | None:
        """The branch HEAD is on, or ``None`` when HEAD is detached."""
        res = _git(self._runner, self.root, "symbolic-ref", "-q", "--short", "HEAD")
        return (res.stdout.strip() or None) if res.ok else None

    def remotes(self) -> list[str]:
        """The names of the configured remotes."""
        return self._git("remote").stdout.split()

    def ls_remote(self, remote: str, refs: Sequence[str]) -> dict[str, str]:
        """The remote's ``refs`` (full names) that exist there, with their objects.

        Asks the remote itself (no fetch, nothing changes here); an unreachable remote
        is a :class:`GitError`, since then nobody can say whether a tag is free there.
        """
        try:
            res = self._runner.run(
                ["git", "-C", str(self.root), "ls-remote", remote, *refs], timeout=120
            )
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"the remote {remote} did not answer git ls-remote in time") from exc
        if not res.ok:
            raise GitError(
                f"cannot ask the remote {remote} for its refs: {_first_line(res.stderr)}"
            )
        found: dict[str, str] = {}
        for line in res.stdout.splitlines():
            sha, _, ref = line.partition("\t")
            if ref in refs:
                found[ref] = sha
        return found

    def is_ancestor(self, commit: str, of: str) -> bool:
        """Whether ``commit`` is ``of`` or one of its ancestors (``False`` when this
        repository does not even have ``commit``)."""
        res = _git(self._runner, self.root, "merge-base", "--is-ancestor", commit, of)
        return res.returncode == 0

    def has_identity(self) -> bool:
        """Whether git knows who commits and tags here (``user.name``/``user.email``)."""
        return _git(self._runner, self.root, "var", "GIT_COMMITTER_IDENT").ok

    def tag_message(self, name: str) -> str | None:
        """The message of the annotated tag ``name``; ``None`` for a lightweight tag."""
        out = self._git(
            "for-each-ref", f"refs/tags/{name}", "--format=%(objecttype)%00%(contents)"
        ).stdout
        kind, _, contents = out.partition("\0")
        return contents.rstrip("\n") + "\n" if kind == "tag" else None

    # -- changes (imgtag release only) ---------------------------------------------------

    def commit_file(self, path: Path, message: str) -> str:
        """Commit ``path`` (already written) alone with ``message``; HEAD moves to the new
        commit, whose hash is returned. The work tree was clean, so nothing else rides along.
        """
        self._git("add", "--", str(path))
        self._git("commit", "-q", "-m", message, "--", str(path))
        self.head = self._git("rev-parse", "HEAD").stdout.strip()
        return self.head

    def create_tag(self, name: str, message: str, commit: str) -> None:
        """An annotated tag whose message is ``message`` byte for byte (``--cleanup=verbatim``
        keeps ``#`` lines, which the default cleanup would strip as comments)."""
        self._git("tag", "-a", "--cleanup=verbatim", "-F", "-", name, commit, input=message)

    def delete_tag(self, name: str) -> None:
        self._git("tag", "-d", name)

    def reset_to(self, commit: str) -> None:
        """Move the branch back to ``commit`` (``--keep``: refuses rather than lose local
        changes, and leaves untracked files alone)."""
        self._git("reset", "-q", "--keep", commit)
        self.head = commit

    def reset_path(self, path: Path) -> None:
        """The index entry of ``path`` back to HEAD's (gone, if HEAD has none); the file
        on disk is the caller's."""
        self._git("reset", "-q", "HEAD", "--", str(path))

    def push_atomic(self, remote: str, branch: str | None, tag: str) -> Result:
        """``git push --atomic REMOTE HEAD:refs/heads/BRANCH refs/tags/TAG``: both or neither.

        Returns git's result (the caller decides what a failure means).
        """
        refspecs = [f"HEAD:refs/heads/{branch}"] if branch else []
        refspecs.append(f"refs/tags/{tag}:refs/tags/{tag}")
        args = ["git", "-C", str(self.root), "push", "--atomic", "--porcelain", remote, *refspecs]
        try:
            return self._runner.run(args, timeout=600)
        except subprocess.TimeoutExpired:
            return Result(tuple(args), 124, "", f"git push to {remote} timed out")

    # -- internals -----------------------------------------------------------------------

    def _left_right(self, commit: str) -> tuple[int, int] | None:
        """(commits in ``commit`` not in HEAD, commits in HEAD not in ``commit``), or
        ``None`` when ``commit`` names no commit (a tag on a tree or blob)."""
        res = _git(
            self._runner,
            self.root,
            "rev-list",
            "--left-right",
            "--count",
            f"{commit}...{self.head}",
        )
        if not res.ok:
            if "not a commit" in res.stderr or "bad revision" in res.stderr:
                return None
            raise GitError(f"git rev-list failed in {self.root}: {_first_line(res.stderr)}")
        behind, ahead = res.stdout.split()
        return int(behind), int(ahead)

    def _refuse_hidden_tags(
        self, base: BaseTag | None, candidates: Sequence[VersionTag], prefix: str | None
    ) -> None:
        """In a shallow clone, refuse unless the base is provably the highest tag.

        "Unreachable" may only mean "beyond the cut", and ``git clone --depth`` fetches
        only the tags inside its history, so a higher tag may not even exist locally.
        The remote is asked (``ls-remote``): the base stands only if no version tag there
        or here is higher. Anything else would be a silently lower version.
        """
        advice = (
            "fetch the whole history with tags (git fetch --tags --unshallow, or "
            "fetch-depth: 0 on actions/checkout, GIT_DEPTH: 0 on GitLab)"
        )
        top_local = candidates[0] if candidates else None
        if base is None or (top_local is not None and top_local.name != base.tag.name):
            what = (
                f"the tag {top_local.name} is not reachable in its history"
                if top_local is not None
                else "its history holds no version tag"
            )
            raise ShallowCloneError(f"this clone is shallow and {what}: {advice}")
        remote = self._remote_tags()
        if remote is None:
            raise ShallowCloneError(
                "this clone is shallow and its remote cannot be asked for tags beyond the "
                f"cut, so {base.tag.name} may not be the highest: {advice}"
            )
        higher = [t for t in version_tags(remote, prefix) if t.precedence() > base.tag.precedence()]
        if higher:
            raise ShallowCloneError(
                f"this clone is shallow and the remote has the tag {higher[0].name}, higher "
                f"than {base.tag.name}, which its history does not reach: {advice}"
            )

    def _remote_tags(self) -> dict[str, str] | None:
        """Tag names on the remote this clone came from, or ``None`` if it cannot be asked."""
        remotes = _git(self._runner, self.root, "remote").stdout.split()
        if not remotes:
            return None
        remote = "origin" if "origin" in remotes else remotes[0]
        try:
            res = self._runner.run(
                ["git", "-C", str(self.root), "ls-remote", "--tags", "--refs", remote],
                timeout=60,
            )
        except Exception:  # timeout: as good as unreachable
            return None
        if not res.ok:
            return None
        tags: dict[str, str] = {}
        for line in res.stdout.splitlines():
            sha, _, ref = line.partition("\trefs/tags/")
            if ref:
                tags[ref] = sha
        return tags

    def _git(self, *args: str, input: str | None = None) -> Result:
        res = _git(self._runner, self.root, *args, input=input)
        if not res.ok:
            raise GitError(f"git {args[0]} failed in {self.root}: {_first_line(res.stderr)}")
        return res


def _git(
    runner: Runner, path: str | os.PathLike[str], *args: str, input: str | None = None
) -> Result:
    try:
        return runner.run(["git", "-C", os.fspath(path), *args], input=input)
    except ProgramNotFound as exc:
        raise GitError("git is not installed: install git (e.g. apt-get install git)") from exc


def _raise_for_ownership(res: Result, shown: str) -> None:
    # git >= 2.35.2 refuses repositories owned by another user (CVE-2022-24765), which
    # is common in CI containers; say how to allow it instead of "not a repository".
    if "dubious ownership" in res.stderr:
        raise GitError(
            f"git refuses {shown} because another user owns it: run "
            f"git config --global --add safe.directory {shown}"
        )


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no message"
    return line.removeprefix("fatal: ").removeprefix("error: ")


def remote_url(path: str | os.PathLike[str], remote: str = "origin") -> str | None:
    """The URL of ``remote`` in the checkout at ``path``, if any.

    It may carry credentials (``https://token@host/...``): callers strip them
    (``tagger.build.labels.public_url``) before the URL goes anywhere.
    """
    res = _git(Runner(), path, "config", "--get", f"remote.{remote}.url")
    return (res.stdout.strip() or None) if res.ok else None
