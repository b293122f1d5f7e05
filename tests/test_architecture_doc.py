"""docs/architecture.md names what exists: every dotted name imports, every path is there."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("core", "routing", "ivr", "outbound", "web", "fakes")
TICKED = re.compile(r"`([^`\s]+)`")


def _ticked() -> list[str]:
    return TICKED.findall(DOC.read_text(encoding="utf-8"))


def _resolve(dotted: str) -> object:
    """The object DOTTED names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ModuleNotFoundError(dotted)


def test_every_dotted_name_in_the_document_imports() -> None:
    names = [t for t in _ticked() if t.split(".")[0] in PACKAGES and "." in t
             and "/" not in t]
    assert len(names) > 40
    missing = []
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{name}: {exc}")
    assert missing == []


def test_every_path_in_the_document_exists() -> None:
    paths = [t for t in _ticked() if "/" in t and not t.startswith(("<", "http"))]
    assert len(paths) > 10
    assert [p for p in paths if not list(ROOT.glob(p.rstrip("/")))] == []
