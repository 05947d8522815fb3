"""The `dbl` commands a marketer runs: minting email links, importing attendance."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from config.settings import Settings
from contracts import codec, kafka
from dbl.embedded import wait_for_port
from tests.conftest import ProcessFactory, read_all

pytestmark = pytest.mark.integration


def dbl(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings.as_environment()}
    command = [sys.executable, "-m", "dbl.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_email_link_mints_urls_the_collector_honours(
    settings: Settings, start_process: ProcessFactory
):
    public = f"http://127.0.0.1:{settings.collector_port}"
    settings = settings.with_overrides(public_url=public)
    done = dbl(
        settings,
        "email-link",
        "--site",
        "demo",
        "--contact",
        "Dana@Acme.com",
        "--campaign",
        "spring",
        "--url",
        "https://www.dbl.example/pricing",
    )
    assert done.returncode == 0, done.stderr
    pixel, click = (line.split()[-1] for line in done.stdout.splitlines())
    assert pixel.startswith(f"{public}/e/o/")
    assert pixel.endswith(".gif")
    collector = start_process("tracking")
    wait_for_port(settings.collector_port, collector, timeout=20)
    answer = httpx.get(click, follow_redirects=False, timeout=10)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith("https://www.dbl.example/pricing?dbl_t=")


def test_email_link_refuses_what_it_cannot_sign(settings: Settings):
    done = dbl(
        settings, "email-link", "--site", "demo-backend", "--contact", "d@a.com", "--campaign", "x"
    )
    assert done.returncode == 2
    assert "has no secret" in done.stderr
    done = dbl(
        settings,
        "email-link",
        "--site",
        "demo",
        "--contact",
        "d@a.com",
        "--campaign",
        "x",
        "--url",
        "ftp://files.example/x",
    )
    assert "only http(s) URLs" in done.stderr


def test_import_attendance_is_all_or_nothing_and_reports_lines(settings: Settings, tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "email,name,company,title,event,status,time\n"
        "dana@acme.com,Dana Ruiz,Acme,VP Sales,Scoring,attended,2026-11-20T15:00:00Z\n"
        "lee@,Lee,Globex,CTO,Scoring,attended,2026-11-20T15:00:00Z\n"
    )
    done = dbl(settings, "import-attendance", str(bad), "--site", "demo-backend")
    assert done.returncode == 1
    assert "nothing imported, 1 bad rows" in done.stderr
    assert "line 3: email 'lee@' is not an email address" in done.stderr
    assert read_all(settings, settings.events_topic) == []

    good = tmp_path / "good.csv"
    rows = [
        f"p{n}@acme.com,P {n},Acme,VP,Scoring,attended,2026-11-20T15:00:00Z" for n in range(150)
    ]
    good.write_text("email,name,company,title,event,status,time\n" + "\n".join(rows) + "\n")
    done = dbl(settings, "import-attendance", str(good), "--site", "demo-backend")
    assert done.returncode == 0, done.stderr
    assert "imported 150 rows (300 events)" in done.stdout
    assert "300/300" in done.stderr, "progress is shown"
    records = [codec.loads(r.value()) for r in read_all(settings, settings.events_topic)]
    assert len(records) == 300
    assert {r["trust"] for r in records} == {"server"}
    assert sum(r["event"] == "Webinar Attended" for r in records) == 150


def test_import_needs_a_server_site(settings: Settings, tmp_path: Path):
    csv_file = tmp_path / "x.csv"
    csv_file.write_text("email,name,company,title,event,status,time\n")
    done = dbl(settings, "import-attendance", str(csv_file), "--site", "demo")
    assert done.returncode == 2
    assert "not a server site" in done.stderr


def test_import_outcomes_checks_every_row_first_then_imports_them(
    settings: Settings, tmp_path: Path
):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "email,outcome,time,amount\n"
        "dana@acme.com,won,2026-11-20T15:00:00Z,12000\n"
        "lee@globex.io,signed,2026-11-20T15:00:00Z,\n"
        "bo@acme.com,lost,2026-11-20T15:00:00,\n"
        "cy@acme.com,created,2026-11-20T15:00:00Z,lots\n"
    )
    done = dbl(settings, "import-outcomes", str(bad), "--site", "demo-backend")
    assert done.returncode == 1
    assert "nothing imported, 3 bad rows" in done.stderr
    assert "line 3: outcome must be one of created, won, lost, got 'signed'" in done.stderr
    assert "line 4: time '2026-11-20T15:00:00' needs a time zone" in done.stderr
    assert "line 5: amount 'lots' is not a number" in done.stderr
    assert read_all(settings, settings.events_topic) == []

    good = tmp_path / "good.csv"
    good.write_text(
        "email,outcome,time,amount\n"
        "dana@acme.com,created,2026-11-01T10:00:00Z,12000\n"
        "dana@acme.com,won,2026-11-20T15:00:00Z,\n"
    )
    done = dbl(settings, "import-outcomes", str(good), "--site", "demo-backend")
    assert done.returncode == 0, done.stderr
    assert "imported 2 rows (2 events)" in done.stdout
    records = [codec.loads(r.value()) for r in read_all(settings, settings.events_topic)]
    assert [(r["event"], r["email"], r["trust"]) for r in records] == [
        ("Opportunity Created", "dana@acme.com", "server"),
        ("Opportunity Won", "dana@acme.com", "server"),
    ]
    assert records[0]["props"] == {"amount": 12000.0}


def test_export_events_writes_the_window_as_gzipped_json_lines(settings: Settings, tmp_path: Path):
    base = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    producer = Producer(kafka.producer_config(settings.brokers))
    for minute in range(6):
        value = codec.dumps({"id": f"e{minute}", "received_at": base + minute * 60_000})
        key = f"cookie-{minute % 3}".encode()
        producer.produce(settings.events_topic, value, key, timestamp=base + minute * 60_000)
    assert producer.flush(10) == 0

    window = ["--from", "2026-01-01T00:01:00Z", "--to", "2026-01-01T00:04:00+00:00"]
    first, second = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    done = dbl(settings, "export-events", str(first), *window)
    assert done.returncode == 0, done.stderr
    assert f"{first}: 3 events" in done.stdout
    lines = gzip.decompress(first.read_bytes()).splitlines()
    assert sorted(codec.loads(line)["id"] for line in lines) == ["e1", "e2", "e3"]
    assert dbl(settings, "export-events", str(second), *window).returncode == 0
    assert gzip.decompress(second.read_bytes()) == gzip.decompress(first.read_bytes())

    backwards = dbl(settings, "export-events", str(second), "--from", window[3], "--to", window[1])
    assert backwards.returncode == 2
    assert "--to must be after --from" in backwards.stderr
    no_zone = dbl(
        settings, "export-events", str(second), "--from", "2026-01-01T00:01:00", "--to", window[3]
    )
    assert "needs a time zone" in no_zone.stderr
