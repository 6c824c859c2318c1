"""``imgtag squash``: placeholder, being written. Glue only."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``squash`` command to ``app`` (not yet)."""
