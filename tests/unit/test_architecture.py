"""Folders are the architecture: services talk through contracts, never import each other;
pure rules import no I/O and no engine."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("tracking", "dataflows", "alerts")
SHARED = ("contracts", "config", "runtime")
LAUNCHER = "dbl"
LEARNING = ("sklearn", "numpy", "scipy", "pandas")
# Tools on top of the dataflow (replays): they may use the dataflow, no service uses them.
TOOLS = ("backtests", "training")
# What the pure rules may not import: I/O, the engine, the layers above them.
NOT_IN_RULES = (
    *("bytewax", "redis", "confluent_kafka", "prometheus_client", "uvicorn", "socket"),
    *("urllib.request", "http", "subprocess", "threading", "asyncio", "sklearn", "pandas"),
    *("dataflows.io", "dataflows.ordering", "dataflows.steps", "dataflows.flow"),
    *("dataflows.state", "dataflows.guard"),
)


def imports(package: str, root: Path = ROOT) -> Iterator[tuple[Path, str]]:
    """(file, imported module) for every import in a package, function-level ones too."""
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                yield from ((path, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path, node.module


def top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another_service_or_the_launcher(service):
    others = {*SERVICES, *TOOLS, LAUNCHER} - {service}
    crossing = [f"{p.relative_to(ROOT)}: {m}" for p, m in imports(service) if top(m) in others]
    assert crossing == []


@pytest.mark.parametrize("package", SHARED)
def test_shared_packages_import_no_service_and_not_the_launcher(package):
    crossing = [
        f"{p.relative_to(ROOT)}: {m}"
        for p, m in imports(package)
        if top(m) in {*SERVICES, *TOOLS, LAUNCHER}
    ]
    assert crossing == []


@pytest.mark.parametrize("tool", TOOLS)
def test_tools_use_the_dataflow_and_shared_packages_only(tool):
    crossing = [
        f"{p.relative_to(ROOT)}: {m}"
        for p, m in imports(tool)
        if top(m) in {"tracking", "alerts", LAUNCHER}
    ]
    assert crossing == []


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_learns_on_the_per_event_path(service):
    found = [f"{p.relative_to(ROOT)}: {m}" for p, m in imports(service) if top(m) in LEARNING]
    assert found == []


def test_the_pure_rules_import_no_io_and_no_engine():
    found = [
        f"{p.relative_to(ROOT)}: {m}"
        for p, m in imports("dataflows/rules")
        if any(m == bad or m.startswith(bad + ".") for bad in NOT_IN_RULES)
    ]
    assert found == []


def test_the_walk_sees_an_import_at_any_depth(tmp_path):
    (tmp_path / "tracking").mkdir()
    (tmp_path / "tracking" / "x.py").write_text("def f():\n    from alerts.api import app\n")
    assert [m for _, m in imports("tracking", tmp_path)] == ["alerts.api"]


def test_the_dbl_command_starts_without_the_learning_libraries():
    """Every `dbl` command (and `dbl run`'s restarts) pays for what it imports at start."""
    check = (
        "import sys, dbl.cli; sys.exit(' '.join({'sklearn', 'numpy'} & set(sys.modules)) or None)"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
