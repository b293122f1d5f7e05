"""The documents that name tests keep naming tests that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"`((?:tests/[\w/]+|test_\w+)\.py)?(::)?(test_\w+)`")
DOCS = ("docs/security.md", "docs/security-review.md")
# security-review.md names a file of tests/web by its name alone, a test of the file before
# it on the same line as `::test_…`, and one of tests/web/test_surface.py as `test_…`.
SHORT_FOLDER = "tests/web"
NO_FILE = "tests/web/test_surface.py"


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")}


def _references(text: str) -> list[tuple[str, str]]:
    found = []
    for line in text.splitlines():
        previous = None
        for file, colons, name in REFERENCE.findall(line):
            if file and not file.startswith("tests/"):
                file = f"{SHORT_FOLDER}/{file}"
            file = file or (previous if colons else NO_FILE)
            if file is None:
                raise AssertionError(f"`::{name}` with no file before it: {line}")
            found.append((file, name))
            previous = file
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_every_test_a_document_names_exists(doc: str) -> None:
    references = _references((ROOT / doc).read_text(encoding="utf-8"))
    assert len(references) > 50
    missing = [f"{file}::{name}" for file, name in references
               if not (ROOT / file).is_file() or name not in _test_names(ROOT / file)]
    assert missing == []


FAULT_TABLE = "docs/reliability.md"
COMMAND = re.compile(r"`((?:\w+=\S+ )*)\.venv/bin/pytest -s (tests/[\w/]+\.py)(?: -k ([\w-]+))?`")


def test_every_command_in_the_fault_table_runs_a_test_that_exists() -> None:
    rows = [line for line in (ROOT / FAULT_TABLE).read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and ".venv/bin/pytest" in line]
    assert len(rows) >= 7
    for row in rows:
        [(variables, file, selection)] = COMMAND.findall(row)
        path = ROOT / file
        assert path.is_file(), row
        names = _test_names(path)
        assert names, row
        # -k matches a test's name or the id of one of its parameters
        assert not selection or any(selection in name for name in names) \
            or f'"{selection}"' in path.read_text(encoding="utf-8"), row
        assert {v.split("=")[0] for v in variables.split()} <= {"FAULT_TRIALS", "FAULT_FULL",
                                                                  "TEST_DATABASE_URL"}
