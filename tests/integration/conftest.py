"""Marks every test under tests/integration as ``integration`` (it needs the real bed).

No I/O here; the bed fixtures themselves live in ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items, not only this directory's: filter by path.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
