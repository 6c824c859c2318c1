"""The ecr provider without its optional extra: one sentence, exit 2, never a traceback."""

from __future__ import annotations

import sys

import pytest

from tagger.errors import ExitCode, UsageError
from tagger.registry.http import RetryBudget, RetryPolicy
from tagger.registry.providers.ecr import EcrApi


def test_a_call_without_botocore_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "botocore" or m.startswith("botocore.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "botocore", None)  # import botocore raises ImportError
    api = EcrApi("eu-west-1", None, RetryBudget(RetryPolicy.from_env({})))
    with pytest.raises(UsageError) as caught:
        api.call("list_images", "listing team/app", repositoryName="team/app")
    assert caught.value.exit_code == ExitCode.USAGE
    assert str(caught.value) == "the ecr provider needs botocore: pip install 'imgtag-release[ecr]'"
