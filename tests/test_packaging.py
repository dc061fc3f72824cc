"""What ``pip install .`` gives: every package the library imports is declared, and what only the demo or the
benchmarks need (the ``demo`` and ``bench`` extras) is imported lazily, with a one-line error naming the extra
when it is missing."""

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    """Distribution names (normalised) of requirement strings; "asr[demo]" names the extra, not a package."""
    names = {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0] for r in requirements}
    return {re.sub(r"[-_.]+", "-", n).lower() for n in names} - {"asr"}


def _module_level_imports() -> dict[str, set[str]]:
    """Top-level module name -> the asr files importing it at module level (not inside a function)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "asr").rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_module_level_imports_are_declared_and_the_extras_are_lazy():
    runtime = _names(PROJECT["dependencies"])
    extras = {extra: _names(reqs) for extra, reqs in PROJECT["optional-dependencies"].items()}
    declared = runtime.union(*extras.values())
    distributions = importlib.metadata.packages_distributions()
    imported = {
        module: files
        for module, files in _module_level_imports().items()
        if module not in sys.stdlib_module_names and module not in ("asr", "__future__")
    }
    for module, files in imported.items():
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(module, [module])}
        assert dists & declared, f"{module} (imported by {sorted(files)}) is not declared in pyproject.toml"
        lazy = dists & (extras["demo"] | extras["bench"])
        assert not lazy, (
            f"{sorted(files)} import {module} at module level: the {lazy} extra must stay optional"
        )
    assert "soxr" in runtime and "espeakng-loader" in extras["demo"] and "librosa" in extras["bench"]
    dev_extras = {
        e for r in PROJECT["optional-dependencies"]["dev"] if r.startswith("asr[") for e in r[4:-1].split(",")
    }
    assert "demo" in dev_extras  # the tests speak with eSpeak NG


def test_without_the_demo_extra_synthesis_is_a_one_line_error():
    """Without espeakng-loader every asr module still imports, and synthesis names the extra to install.

    (librosa is not blocked here: torchmetrics, which Lightning imports, imports it whenever it is installed.
    The test above checks that no asr module imports it at module level.)"""
    code = """
import importlib, pkgutil, sys
sys.modules["espeakng_loader"] = None  # importing it raises ImportError
import asr
for module in pkgutil.walk_packages(asr.__path__, "asr."):
    try:
        importlib.import_module(module.name)
    except ImportError as e:
        if e.name == "espeakng_loader":
            raise
from asr.errors import run_main
from asr.synth import synthesize
sys.exit(run_main(lambda: synthesize("hello")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    need = "speech synthesis needs espeakng-loader: pip install 'asr[demo]' (in a checkout: -e '.[demo]')"
    assert out.stderr == f"error: {need}\n"
