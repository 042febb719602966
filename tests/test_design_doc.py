"""docs/design.md names the tests that check each invariant: every one it names must exist.

Tests move and get renamed; without this check the list would drift from the suite.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
DESIGN = ROOT / "docs" / "design.md"
_CITED = re.compile(r"\b(tests/[\w/]+\.py)::(test_\w+)")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_test_the_design_names_exists() -> None:
    cited = _CITED.findall(DESIGN.read_text())
    assert len(cited) >= 12  # at least one a rule: the pattern still finds them
    missing = [
        f"{path}::{name}"
        for path, name in cited
        if not (ROOT / path).is_file() or name not in _tests_in(ROOT / path)
    ]
    assert missing == [], "docs/design.md names tests that do not exist: update it"


def test_every_invariant_names_at_least_one_test() -> None:
    # The numbered rules of "## Invariants", each followed by its list of tests.
    section = DESIGN.read_text().split("## Invariants", 1)[1].split("\n## ", 1)[0]
    rules = [r for r in re.split(r"\n(?=\d+\. \*\*)", section) if re.match(r"\d+\. ", r)]
    assert len(rules) >= 10
    bare = [rule.splitlines()[0] for rule in rules if not _CITED.search(rule)]
    assert bare == []
