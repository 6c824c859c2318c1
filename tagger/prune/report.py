"""What ``imgtag prune`` shows: the plan table or json, the summary, the failures. Pure:
strings from a :class:`~tagger.prune.run.PruneResult`; the command line writes them.

Tag names come from the registry: in text they are printed with anything outside
printable ASCII replaced (no terminal escapes); json keeps them exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from tagger.errors import PolicyError
from tagger.prune.plan import DELETE, KEEP, SKIP, UNTAG
from tagger.prune.run import PruneResult, key

_UNSAFE = re.compile(r"[^\x20-\x7e]")


def _safe(text: str) -> str:
    return _UNSAFE.sub("?", text)


def rows(result: PruneResult) -> list[dict[str, Any]]:
    """One row a planned tag (json keys: ``image``, ``tag``, ``digest``, ``created``,
    ``action``, ``reason``, and ``result`` where it was carried out)."""
    out = []
    for ref, actions in result.plans:
        for a in actions:
            row = {"image": str(ref), **a.as_dict()}
            done = result.results.get(key(ref, a))
            if done is not None:
                row["action"], row["reason"] = done[0], done[1]
                row["result"] = "ok" if done[2] else f"failed: {done[3]}"
            out.append(row)
    return out


def counts(table: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    tally = {KEEP: 0, DELETE: 0, UNTAG: 0, SKIP: 0, "failed": 0}
    for row in table:
        tally[row["action"]] = tally.get(row["action"], 0) + 1
        if str(row.get("result", "ok")).startswith("failed"):
            tally["failed"] += 1
    return tally


def render_json(result: PruneResult) -> str:
    from tagger.output import to_json

    table = rows(result)
    doc: dict[str, Any] = {"plan": table, "summary": counts(table)}
    if len(result.plans) > 1:
        doc["repositories"] = {
            str(ref): counts([r for r in table if r["image"] == str(ref)])
            for ref, _ in result.plans
        }
    if result.validated is not None:
        doc["validate"] = {
            "checked": result.validated,
            "broken": [{"image": b.image, "tag": b.tag, "problem": b.what} for b in result.broken],
        }
    return to_json(doc)


def render_text(result: PruneResult) -> str:
    """The plan as a table, then the summary line."""
    table = rows(result)
    headers = ("IMAGE", "TAG", "DIGEST", "CREATED", "ACTION", "REASON")
    cells = [
        (
            r["image"],
            r["tag"] or "-",
            r["digest"][:19],
            r["created"] or "-",
            r["action"],
            r["reason"] + (f" [{r['result']}]" if "result" in r and r["result"] != "ok" else ""),
        )
        for r in table
    ]
    widths = [
        max([len(h)] + [len(_safe(str(row[i]))) for row in cells])
        for i, h in enumerate(headers[:-1])
    ]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers[:-1], widths, strict=True))
        + "  "
        + headers[-1]
    ]
    for row in cells:
        line = [_safe(str(c)).ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join(line) + "  " + _safe(str(row[-1])))
    if not isinstance(result.refusal, PolicyError):  # a plan over --max-delete: no summary
        if len(result.plans) > 1:
            lines.extend(repository_summaries(result, table))
        lines.append(summary(result, table))
        if result.validated is not None:
            lines.append(validation(result))
    return "\n".join(lines)


def repository_summaries(result: PruneResult, table: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line a repository, in the order planned."""
    out = []
    for ref, _ in result.plans:
        tally = counts([r for r in table if r["image"] == str(ref)])
        text = (
            f"{_safe(str(ref))}: keep {tally[KEEP]}, delete {tally[DELETE]}, "
            f"untag {tally[UNTAG]}, skip {tally[SKIP]}"
        )
        out.append(text + (f", failed {tally['failed']}" if tally["failed"] else ""))
    return out


def validation(result: PruneResult) -> str:
    """What ``--validate`` found, one line."""
    noun = "tag" if result.validated == 1 else "tags"
    if not result.broken:
        return f"validate: {result.validated} {noun} that stay resolve fully"
    return (
        f"validate: {len(result.broken)} of {result.validated} {noun} that stay do not "
        "resolve fully"
    )


def summary(result: PruneResult, table: Sequence[Mapping[str, Any]] | None = None) -> str:
    tally = counts(rows(result) if table is None else table)
    noun = "repository" if len(result.plans) == 1 else "repositories"
    total = "in total, " if len(result.plans) > 1 else ""
    text = (
        f"{total}{len(result.plans)} {noun}: keep {tally[KEEP]}, delete {tally[DELETE]}, "
        f"untag {tally[UNTAG]}, skip {tally[SKIP]}"
    )
    if result.applied:
        return text + (f", failed {tally['failed']}" if tally["failed"] else ", all done")
    return text + " (dry run: nothing deleted; pass --apply)"


def failures(result: PruneResult) -> list[str]:
    """One line a failed removal, for stderr."""
    lines = [f"failed: {image}:{tag}: {done[3]}" for (image, tag), done in result.failed()]
    lines += [f"broken: {_safe(b.image)}:{_safe(b.tag)}: {_safe(b.what)}" for b in result.broken]
    return lines
