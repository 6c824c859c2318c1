"""``imgtag lint``: placeholder, being written. Glue only."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``lint`` command to ``app`` (not yet)."""
