"""Pytest plugin: writes RELIABILITY.md from the cases recorded by the reliability tests.

The file is rewritten only after a run of the whole suite (every ``tests/test_*.py``, no ``-k``, ``-m``,
``::`` node ids, ``--deselect`` or ``--lf``) that passed. A partial run never writes it: besides leaving
rows out, it would count other fuzz cases, since hypothesis seeds some examples from the literals of the
modules loaded in the process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import reliability


def _complete(session: pytest.Session) -> bool:
    opt = session.config.option
    if getattr(opt, "keyword", "") or getattr(opt, "markexpr", "") or getattr(opt, "deselect", None):
        return False
    if getattr(opt, "lf", False) or any("::" in str(arg) for arg in session.config.args):
        return False
    collected = {Path(str(item.fspath)).name for item in session.items}
    suite = {p.name for p in Path(__file__).parent.glob("test_*.py")}
    return suite <= collected


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus != 0 or not _complete(session) or not reliability.RECORDS:
        return
    target = Path(str(session.config.rootpath)) / reliability.TARGET
    text = reliability.render()
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
