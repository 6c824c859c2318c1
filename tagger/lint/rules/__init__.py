"""The rule table IMG001-IMG013, one module per family. Pure.

base (IMG001, IMG002), layering (IMG003-IMG005), packages (IMG006-IMG008),
users (IMG009, IMG012), runtime (IMG010, IMG011, IMG013).
"""

from __future__ import annotations

from tagger.lint.findings import Rule
from tagger.lint.rules import base, layering, packages, runtime, users

ALL_RULES: tuple[Rule, ...] = tuple(
    sorted(
        (*base.RULES, *layering.RULES, *packages.RULES, *users.RULES, *runtime.RULES),
        key=lambda r: r.id,
    )
)
RULES_BY_ID = {rule.id: rule for rule in ALL_RULES}
