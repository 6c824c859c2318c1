"""``imgtag analyze``: placeholder, being written. Glue only."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` command to ``app`` (not yet)."""
