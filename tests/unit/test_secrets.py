"""The demo's secrets are public: outside demo mode nothing starts with them, and a
deployment keeps its own secrets in files or the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.routing import load_routing
from config.secrets import refuse_demo_secrets
from config.settings import CONFIG_DIR, Settings
from config.sites import load_sites

SITES = """
[sites.shop]
write_key = "wk_shop_browser"
trust = "browser"
secret = { file = "SECRET_FILE" }

[sites.crm]
write_key = { env = "DBL_TEST_SERVER_KEY" }
trust = "server"
"""


def _own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    secret_file = tmp_path / "site-secret"
    secret_file.write_text("a-long-site-secret-of-our-own\n")
    sites = tmp_path / "sites.toml"
    sites.write_text(SITES.replace("SECRET_FILE", str(secret_file)))
    routing = tmp_path / "routing.toml"
    text = (CONFIG_DIR / "routing.toml").read_text()
    for value in (
        *("demo-admin-token", "demo-token-alex", "demo-token-sam", "demo-token-mia"),
        "demo-slack-signing-secret",
    ):
        text = text.replace(f'"{value}"', f'"{value.replace("demo", "ours-x9")}"')
    routing.write_text(text)
    monkeypatch.setenv("DBL_TEST_SERVER_KEY", "wk_server_kept_in_the_environment")
    return Settings(sites_file=str(sites), routing_file=str(routing))


def test_the_shipped_configuration_is_refused_outside_demo_mode_naming_file_and_key():
    with pytest.raises(ConfigError) as refused:
        refuse_demo_secrets(Settings())
    assert refused.value.source.endswith("sites.toml")
    assert refused.value.key == "sites.demo.secret"
    assert "demo value (and 6 more)" in str(refused.value)
    refuse_demo_secrets(Settings(demo=True))


def test_secrets_come_from_files_and_the_environment(tmp_path, monkeypatch):
    settings = _own_config(tmp_path, monkeypatch)
    refuse_demo_secrets(settings)
    sites = load_sites(settings.sites_path)
    assert sites["wk_shop_browser"].secret == "a-long-site-secret-of-our-own"
    assert "wk_server_kept_in_the_environment" in sites
    assert load_routing(settings.routing_path).admin_token == "ours-x9-admin-token"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('{ file = "/nonexistent/secret" }', "cannot read /nonexistent/secret"),
        ('{ env = "DBL_TEST_UNSET_VARIABLE" }', "is empty"),
        ('{ vault = "x" }', 'must be { file = "PATH" } or { env = "VARIABLE" }'),
    ],
)
def test_a_secret_that_cannot_be_read_names_file_key_and_problem(tmp_path, value, problem):
    sites = tmp_path / "sites.toml"
    sites.write_text(f'[sites.shop]\nwrite_key = "k"\ntrust = "browser"\nsecret = {value}\n')
    with pytest.raises(ConfigError) as refused:
        load_sites(sites)
    assert refused.value.key == "sites.shop.secret"
    assert problem in refused.value.problem


@pytest.mark.parametrize("command", [["tracking"], ["alerts"], ["dbl.cli", "run"]])
def test_no_process_starts_with_the_demo_secrets_unless_told_it_is_the_demo(command):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBL_", "KAFKA_", "REDIS_"))}
    done = subprocess.run(
        [sys.executable, "-m", *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "sites.demo.secret is the shipped demo value" in done.stderr
    assert "demo-token" not in done.stdout + done.stderr, "secrets are never printed"
