"""The scale-out deployment cannot silently rot: docker-compose.yml, the Prometheus config
and the Grafana dashboard are checked against the code's entry points, settings, ports,
topics and metrics."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OURS = {name: s for name, s in SERVICES.items() if s.get("image") == "dbl:local"}
SETTINGS_VARIABLES = {f.metadata["env"] for f in dataclasses.fields(Settings)}
# Variables read by the libraries we run (uvicorn's proxy trust).
LIBRARY_VARIABLES = {"FORWARDED_ALLOW_IPS"}


def _main_module(command: list[str]) -> str:
    assert command[:2] == ["python", "-m"], command
    return command[2]


def test_every_service_of_ours_runs_a_real_entry_point():
    assert {"topics", "collector-1", "collector-2", "dataflow-0", "dataflow-1", "alerts"} <= set(
        OURS
    )
    for name, service in OURS.items():
        command = service["command"]
        if command[0] == "dbl":
            from dbl.cli import main

            with pytest.raises(SystemExit) as shown:
                main([command[1], "--help"])
            assert shown.value.code == 0, f"{name}: dbl {command[1]} is not a command"
            continue
        module = _main_module(command)
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"{name}: no module {module}"
        if spec.submodule_search_locations is not None:  # a package runs its __main__
            assert importlib.util.find_spec(f"{module}.__main__"), f"{name}: {module} won't run"


def test_environment_variables_are_ones_the_code_reads_with_valid_values():
    for name, service in OURS.items():
        environment = service.get("environment", {})
        unknown = set(environment) - SETTINGS_VARIABLES - LIBRARY_VARIABLES
        assert not unknown, f"{name}: {unknown} are read by nothing"
        known = {k: v for k, v in environment.items() if k in SETTINGS_VARIABLES}
        Settings.from_environment(known)  # parses every value, or names the bad one
    defaults = Settings()
    environment = OURS["alerts"]["environment"]
    assert environment["DBL_EVENTS_TOPIC"] == defaults.events_topic
    assert environment["DBL_ALERTS_TOPIC"] == defaults.alerts_topic
    assert environment["DBL_DLQ_TOPIC"] == defaults.dlq_topic


def test_the_bytewax_cluster_is_consistent():
    flows = {
        n: s["command"]
        for n, s in OURS.items()
        if s["command"][:3] == ["python", "-m", "dataflows"] and "--shadow" not in s["command"]
    }
    addresses = {c[c.index("-a") + 1] for c in flows.values()}
    assert len(addresses) == 1, "every process is given the same address list"
    hosts = [a.split(":")[0] for a in addresses.pop().split(";")]
    assert sorted(int(c[c.index("-i") + 1]) for c in flows.values()) == list(range(len(hosts)))
    assert set(hosts) == set(flows), "each address is a dataflow service"
    init = SERVICES["recovery-init"]["command"]
    assert init[-1] == str(len(hosts)), "one recovery partition per process"
    for command in flows.values():
        assert {"-r", "-s", "-b"} <= set(command), "recovery is on"


def test_the_shadow_model_runs_apart_when_asked_for():
    shadow = SERVICES["dataflow-shadow"]
    assert shadow["profiles"] == ["shadow"], "optional: only with --profile shadow"
    assert {"--shadow", "-r", "-s", "-b"} <= set(shadow["command"])
    assert "-a" not in shadow["command"], "not a member of the live cluster"
    assert shadow["environment"]["DBL_SHADOW_MODEL"].startswith("/shadow/")
    recovery = {v.split(":")[0] for v in shadow["volumes"]}
    assert "shadow-recovery" in recovery, "a recovery store of its own"
    assert SERVICES["shadow-init"]["command"][-1] == "1"


def test_ports_agree_across_compose_nginx_and_prometheus():
    nginx = (ROOT / "config/nginx/collector.conf").read_text()
    upstream = set(re.findall(r"server (collector-\d+):(\d+);", nginx))
    collectors = {
        (n, s["environment"]["DBL_COLLECTOR_PORT"])
        for n, s in OURS.items()
        if n.startswith("collector-")
    }
    assert upstream == collectors
    prometheus = yaml.safe_load((ROOT / "config/prometheus.yml").read_text())
    targets = {
        t
        for job in prometheus["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    }
    expected = {f"{n}:{p}" for n, p in collectors}
    expected |= {
        f"{n}:{s['environment']['DBL_DATAFLOW_METRICS_PORT']}"
        for n, s in OURS.items()
        if n.startswith("dataflow-") and "--shadow" not in s["command"]
    }
    expected.add(f"alerts:{OURS['alerts']['environment']['DBL_REP_API_PORT']}")
    assert targets == expected


def test_mounted_files_exist():
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            # ./secrets/ is the deployment's own (README, "Running it for real").
            if source.startswith("./") and not source.startswith("./secrets/"):
                assert (ROOT / source).exists(), source


def test_every_metric_on_the_dashboard_is_exported_by_the_code():
    dashboard = json.loads((ROOT / "config/grafana/dashboards/dbl.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    names = {re.sub(r"_(bucket|count|sum)$", "", m) for m in re.findall(r"\b(dbl_[a-z_]+)", exprs)}
    source = " ".join(p.read_text() for p in ROOT.glob("**/metrics.py"))
    for name in names:
        base = name.removesuffix("_total")
        assert f'"{base}' in source, f"{name} is on the dashboard but not exported"


def test_services_read_their_secrets_from_compose_secrets_not_the_demo_config():
    declared = set(COMPOSE["secrets"])
    for name in ("collector-1", "collector-2", "dataflow-0", "dataflow-1", "alerts"):
        service = SERVICES[name]
        environment = service["environment"]
        assert "DBL_DEMO" not in environment, f"{name}: the deployment is no demo"
        for variable in ("DBL_SITES_FILE", "DBL_ROUTING_FILE"):
            secret = environment[variable].removeprefix("/run/secrets/")
            assert secret in service["secrets"], f"{name}: {variable} is no mounted secret"
            assert secret in declared


def test_every_package_is_installed_and_copied_into_the_image():
    """A package missing from either works in the repository and fails once installed."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= included
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) ", dockerfile, re.MULTILINE))
    assert packages <= copied
