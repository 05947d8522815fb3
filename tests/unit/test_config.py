"""Broken configuration stops start-up with the file, the key and the problem."""

import shutil
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.routing import load_routing
from config.scoring import load_scoring_model
from config.settings import CONFIG_DIR, Settings
from config.sites import load_sites


def _copy_config(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_shipped_config_is_valid():
    load_scoring_model(CONFIG_DIR / "scoring.toml")
    assert "wk_demo_browser" in load_sites(CONFIG_DIR / "sites.toml")
    assert load_routing(CONFIG_DIR / "routing.toml").default_team == "inside-sales"


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        ("half_life_days = 14", "half_life_days = 0", "engagement[1].half_life_days", "than 0"),
        (
            "daily_cap = 30\n",
            "daily_cap = 30\nlatest = true\n",
            "engagement[1].daily_cap",
            "latest",
        ),
        ("daily_cap = 30\n", "latest = 1\n", "engagement[1].latest", "true or false"),
        ("points = 10\nhalf_life_days = 14", "points = 'ten'\nhalf_life_days = 14", "points", ""),
        ('id = "pricing_page"', 'id = "page_view"', "engagement[1].id", "repeats"),
        ('types = ["page"]\npaths', 'type = ["page"]\npaths', "type", "not a known key"),
        ('sales_ready = ["A1"', 'sales_ready = ["Z9"', "grade.sales_ready", "Z9"),
        ("A = 70, B = 45", "A = 40, B = 45", "grade.fit_bands.A", "decrease"),
        ('in_list = "free_mail.txt"', 'in_list = "nope.txt"', "in_list", "does not exist"),
        (
            "late_after_minutes = 60",
            "late_after_minutes = -1",
            "alerts.late_after_minutes",
            "greater than 0",
        ),
        ('cells = ["A1", "A2"', 'cells = ["Q7", "A2"', "alerts.live_visit.cells", "'Q7'"),
        ("owned = true\n", 'owned = "yes"\n', "alerts.live_visit.owned", "true or false"),
        ("engaged_contacts = 3", "engaged_contact = 3", "engaged_contact", "not a known key"),
        (
            'looking at pricing"\ntypes = ["page"]\npaths = ["/pricing*"]',
            'looking at pricing"',
            "alerts.key_actions[1].types",
            "needs at least one condition",
        ),
        ("enabled = true", "enabled = 1", "alerts.cooling.enabled", "true or false"),
    ],
)
def test_broken_scoring_file_names_file_key_and_problem(tmp_path, old, new, key, problem):
    config = _copy_config(tmp_path)
    _edit(config / "scoring.toml", old, new)
    with pytest.raises(ConfigError) as caught:
        load_scoring_model(config / "scoring.toml")
    message = str(caught.value)
    assert str(config / "scoring.toml") in message
    assert key in message
    assert problem in message


def test_invalid_toml_names_the_file(tmp_path):
    config = _copy_config(tmp_path)
    (config / "sites.toml").write_text("[sites.x\nwrite_key=")
    with pytest.raises(ConfigError, match=r"sites\.toml is not valid TOML"):
        load_sites(config / "sites.toml")


def test_unknown_trust_and_duplicate_write_keys_are_refused(tmp_path):
    config = _copy_config(tmp_path)
    _edit(config / "sites.toml", 'trust = "browser"', 'trust = "everyone"')
    with pytest.raises(ConfigError, match=r"sites\.demo\.trust must be"):
        load_sites(config / "sites.toml")
    _edit(config / "sites.toml", 'trust = "everyone"', 'trust = "browser"')
    _edit(config / "sites.toml", '"wk_demo_server"', '"wk_demo_browser"')
    with pytest.raises(ConfigError, match="already the key of site 'demo'"):
        load_sites(config / "sites.toml")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('default_team = "inside-sales"', 'default_team = "nobody"', "default_team names 'nobody'"),
        (
            'reps = ["alex", "sam"]',
            'reps = ["alex", "zoe"]',
            r"teams\.inside-sales\.reps names 'zoe'",
        ),
        ('team = "emea"', 'team = "apac"', r"territories\[0\]\.team names 'apac'"),
        ('token = "demo-token-sam"', 'token = "short"', r"reps\.sam\.token must be at least"),
        ('timezone = "Europe/Berlin"', 'timezone = "Mars/Olympus"', "not a known time zone"),
        ('start = "20:00"', 'start = "8pm"', "must be a time such as 22:00"),
        ("live_visit = 60", "live_visit = 0", r"throttle\.live_visit must be greater than 0"),
        ("max_attempts = 6", "max_attempts = -1", r"delivery\.max_attempts must be greater"),
        (
            'sales_ready = ["customer",',
            'sales_ready = ["vip",',
            r"suppress\.sales_ready unknown states \['vip'\]",
        ),
        ('key_action = ["disqualified"]', 'key_actions = ["x"]', r"suppress.*key_actions"),
    ],
)
def test_broken_routing_names_the_key_and_problem(tmp_path, old, new, problem):
    config = _copy_config(tmp_path)
    _edit(config / "routing.toml", old, new)
    with pytest.raises(ConfigError, match=problem):
        load_routing(config / "routing.toml")


def test_without_a_suppress_table_crm_state_silences_sales_ready_by_default(tmp_path):
    config = _copy_config(tmp_path)
    text = (config / "routing.toml").read_text()
    start, end = text.index("[suppress]"), text.index("[delivery]")
    (config / "routing.toml").write_text(text[:start] + text[end:])
    suppress = load_routing(config / "routing.toml").suppress
    assert suppress["sales_ready"] == {"customer", "open_opportunity", "disqualified"}
    assert "account_surge" not in suppress


def test_webhooks_must_be_http_urls_with_a_known_format_and_a_secret(tmp_path):
    config = _copy_config(tmp_path)
    with (config / "routing.toml").open("a") as fh:
        fh.write('\n[[reps.sam.webhooks]]\nurl = "file:///etc/passwd"\nformat = "slack"\n')
        fh.write('secret = "long-enough"\n')
    with pytest.raises(ConfigError, match=r"reps\.sam\.webhooks\[0\]\.url must be an http"):
        load_routing(config / "routing.toml")


@pytest.mark.parametrize(
    "secret",
    [
        "long-enough-but-not-standard",
        "whsec_not*base64",
        "whsec_c2hvcnQ=",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3",
    ],
)
def test_webhook_secrets_are_standard_webhooks_secrets(tmp_path, secret):
    config = _copy_config(tmp_path)
    with (config / "routing.toml").open("a") as fh:
        fh.write('\n[[reps.sam.webhooks]]\nurl = "https://hooks.example/x"\nformat = "json"\n')
        fh.write(f'secret = "{secret}"\n')
    with pytest.raises(ConfigError, match=r"reps\.sam\.webhooks\[0\]\.secret must be a Standard"):
        load_routing(config / "routing.toml")


def test_settings_come_from_named_variables():
    settings = Settings.from_environment({"DBL_COLLECTOR_PORT": "9000", "REDIS_URL": "redis://x"})
    assert settings.collector_port == 9000
    assert settings.redis == "redis://x"
    assert Settings.from_environment(settings.as_environment()) == settings


def test_bad_setting_names_the_variable():
    with pytest.raises(ConfigError, match="DBL_COLLECTOR_PORT must be a whole number"):
        Settings.from_environment({"DBL_COLLECTOR_PORT": "eighty"})


def test_a_models_version_is_its_content(tmp_path):
    """The same files give the same version anywhere; a changed point, or a changed list a
    rule reads, gives another."""
    shipped = load_scoring_model(CONFIG_DIR / "scoring.toml").version
    config = _copy_config(tmp_path)
    assert load_scoring_model(config / "scoring.toml").version == shipped
    assert len(shipped) == 12
    _edit(config / "scoring.toml", "points = 10\n", "points = 11\n")
    changed = load_scoring_model(config / "scoring.toml").version
    assert changed != shipped
    (config / "free_mail.txt").write_text((config / "free_mail.txt").read_text() + "x.example\n")
    assert load_scoring_model(config / "scoring.toml").version not in (shipped, changed)
