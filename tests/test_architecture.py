"""The floors of docs/architecture.md: no import runs upward. Every import statement of the package is read,
those inside functions too (`vqi2i.cli` names the command modules as strings: that is the one way down)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINERS = ("vqi2i.train.trainer", "vqi2i.train.prior_trainer")


def imports() -> list[tuple[str, str]]:
    """(file relative to the root, imported module) for every import of a vqi2i module in vqi2i/."""
    found = []
    for path in sorted((ROOT / "vqi2i").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            found += [(rel, name) for name in names if name.split(".")[0] == "vqi2i"]
    return found


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_only_the_commands_import_the_commands():
    wrong = [(f, m) for f, m in imports() if under(m, "vqi2i.apps") and not f.startswith("vqi2i/apps/")]
    assert not wrong


def test_nothing_below_training_imports_it():
    wrong = [(f, m) for f, m in imports()
             if under(m, "vqi2i.train") and not f.startswith(("vqi2i/train/", "vqi2i/apps/"))]
    assert not wrong


def test_models_open_without_a_trainer():
    """Loading a translator or a prior and choosing a device need no trainer: the one command that imports
    a trainer is `vqi2i demo`, whose --train trains from scratch."""
    wrong = [(f, m) for f, m in imports()
             if any(under(m, t) for t in TRAINERS) and not f.startswith("vqi2i/train/") and f != "vqi2i/apps/demo.py"]
    assert not wrong
