"""``learnroom report`` against a real InfluxDB 1.x filled through the real broker and ingest.

The week is scripted, not simulated: a simulated week through the agent takes minutes of real
time per day, and scripted readings give figures known in advance (the agent's part, that an
environment reading carries the occupied state, is shown by the dashboard tests' simulated
rooms). The PDF is read back with poppler's ``pdftotext`` and drawn with ``pdftoppm``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.central.config import CentralConfig, parse_central
from gateway.central.tools.influx_setup import setup_v1
from gateway.central.tools.report import ReportError, make_report, week_of
from gateway.central.tools.report.text import DASH as NA
from gateway.launch.broker import Mosquitto, mosquitto_path
from gateway.launch.influxd import Influxd
from gateway.models import (
    AnyData,
    EnvironmentData,
    EventData,
    OccupancyData,
    WifiData,
    make_envelope,
)
from tests.central.util import DB, Publisher, running_ingest, wait_for
from tests.paths import ROOT

SITE, ROOM_1, ROOM_2 = "stadtbuecherei-mitte", "lernraum-1", "lernraum-2"
BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=BERLIN)  # ISO week 2026-W48
WEDNESDAY = datetime(2026, 11, 25, 14, 0, tzinfo=BERLIN)
ARTIFACTS = ROOT / "test-artifacts"


def _readings() -> list[tuple[str, str, datetime, AnyData, str]]:
    """(room, kind, time, data, topic tail) of the scripted week; figures in ``test_*``."""
    out: list[tuple[str, str, datetime, AnyData, str]] = []
    for half in range(180):  # lernraum-1, Monday 09:00-10:30, a reading every 30 s
        at = MONDAY + timedelta(seconds=30 * half)
        minute = half // 2
        used = minute < 60
        occ = OccupancyData(
            people=4 if used else 0, occupied=used, seats_total=8, seats_free=4 if used else 8
        )
        co2 = 800.0 if minute < 30 else 1500.0 if minute < 50 else 2500.0
        out.append((ROOM_1, "occupancy", at, occ, "occupancy"))
        out.append(
            (ROOM_1, "environment", at, EnvironmentData(co2_ppm=co2, occupied=used), "environment")
        )
        if half % 2 == 0 and used:
            wifi = WifiData(ssid="public", rssi_dbm=-80.0, ok=not 10 <= minute < 20)
            out.append((ROOM_1, "wifi", at, wifi, "wifi"))
    for kind in ("checkout", "checkout", "overdue"):
        at = MONDAY + timedelta(minutes=15, seconds=len(out) % 60)
        event = EventData(type=kind, locker="a", slot=str(len(out) % 4 + 1))
        out.append((ROOM_1, "events", at, event, "events"))
    for half in range(90):  # lernraum-2, Wednesday 14:00-14:45, one reading of 12 people
        at = WEDNESDAY + timedelta(seconds=30 * half)
        occ = OccupancyData(people=12 if half == 3 else 10, occupied=True)
        out.append((ROOM_2, "occupancy", at, occ, "occupancy"))
        out.append(
            (
                ROOM_2,
                "environment",
                at,
                EnvironmentData(co2_ppm=900.0, occupied=True),
                "environment",
            )
        )
    return out


@dataclass
class Filled:
    influxd: Influxd
    config: CentralConfig


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    if mosquitto_path() is None or shutil.which("influxd") is None:
        pytest.fail("mosquitto and influxd are required; run scripts/test")
    tmp = tmp_path_factory.mktemp("report")
    broker = Mosquitto(tmp / "mosquitto")
    influxd = Influxd(tmp / "influxdb")
    influxd.start()
    try:
        setup_v1(influxd.url, DB)
        with broker.running():
            config = parse_central(
                {
                    "mqtt": {"host": broker.host, "port": broker.port},
                    "accept": {"max_age_s": 0, "max_ahead_s": 0},
                    "influx": {"url": influxd.url, "database": DB, "attempts": 2},
                    "ingest": {
                        "metrics_port": 0,
                        "rejected_file": str(tmp / "rejected.jsonl"),
                        "client_id": "ingest-report",
                        "batch_interval_s": 0.2,
                    },
                    "display": {
                        "sites": {SITE: "Stadtbücherei Mitte"},
                        "rooms": [
                            {
                                "site": SITE,
                                "room": ROOM_1,
                                "name": "Lernraum Süd",
                                "name_en": "Study room south",
                                "hours": {d: ["08:00-20:00"] for d in ("mon", "tue", "wed")},
                            },
                        ],
                    },
                },
                "test",
                environ={},
            )
            with running_ingest(config) as ingest:
                pub = Publisher(broker.port)
                for seq, (room, _, at, data, tail) in enumerate(_readings(), 1):
                    env = make_envelope(SITE, room, data, at, seq)
                    pub.publish(
                        f"learnroom/v1/{SITE}/{room}/{tail}", env.model_dump_json().encode()
                    )
                pub.close()
                wait_for(lambda: ingest.pending() == 0, 20, "the ingest has written all")
                assert ingest.wait_idle(20)
        setup_v1(influxd.url, DB, backfill=True)  # the week lies before the queries' hour
        yield Filled(influxd, config)
    finally:
        influxd.stop()


def pdf_text(path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext is required; run scripts/test (Debian package poppler-utils)")
    done = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    )
    return done.stdout


def pdf_pages(path: Path, out: Path) -> list[Path]:
    """The pages as PNG images (pdftoppm), kept in test-artifacts/ for a human to look at."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", "80", str(path), str(out / path.stem)], check=True)
    return sorted(out.glob(f"{path.stem}*.png"))


def row(text: str, *starts: str) -> list[str]:
    """The words after the first line that begins with ``starts`` and goes on (table cells;
    a plot's label names a room alone)."""
    for line in text.splitlines():
        cells = line.split()
        for start in starts:
            words = start.split()
            if cells[: len(words)] == words and len(cells) > len(words) + 2:
                return cells[len(words) :]
    raise AssertionError(f"no line starts with {starts} in:\n{text}")


def test_the_german_pdf_prints_the_weeks_figures(filled: Filled, tmp_path: Path):
    out = tmp_path / "bericht.pdf"

    weeks = make_report(filled.config, [SITE], "2026-W48", out, lang="de")

    assert [w.site for w in weeks] == [SITE]
    text = pdf_text(out)
    assert "Wochenbericht Stadtbücherei Mitte, KW 48/2026" in text
    assert "23.11.2026 bis 29.11.2026" in text
    # ventilation per room: in use, fine, ventilate, critical, share fine (in use only: the
    # half hour at 2500 ppm after everyone left is no finding)
    assert row(text, "Lernraum Süd")[:6] == ["60", "30", "20", "10", "50", "%"]
    assert row(text, ROOM_2)[:6] == ["45", "45", "0", "0", "100", "%"]
    # use per room and day: open, occupied, mean and peak people, seats, lent, overdue, Wi-Fi
    assert row(text, "Lernraum Süd Mo 23.11.") == [
        "720",
        "60",
        "4,0",
        "4",
        "50",
        "%",
        "2",
        "1",
        "10",
    ]
    assert row(text, "Lernraum Süd Di 24.11.") == ["720", "0", NA, NA, NA, "0", "0", "0"]
    assert row(text, f"{ROOM_2} Mi 25.11.") == [NA, "45", "10,0", "12", NA, "0", "0", "0"]
    # the text to forward
    flat = " ".join(text.split())
    assert "Lernraum Süd: 1,0 h in Nutzung an 1 Tagen, bis zu 4 Personen" in flat
    assert "20 min zum Lüften und 10 min kritisch" in flat
    assert f"{ROOM_2}: 0,8 h in Nutzung an 1 Tagen, bis zu 12 Personen" in flat
    assert "Geräte verliehen: 2, davon überfällig gemeldet: 1." in flat
    assert "WLAN: 10 Minuten mit schlechter Verbindung." in flat
    pages = pdf_pages(out, ARTIFACTS / "report")
    assert len(pages) == 1, "one page per site"


def test_the_english_pdf_says_the_same_in_english(filled: Filled, tmp_path: Path):
    out = tmp_path / "report.pdf"

    make_report(filled.config, [SITE], "2026-W48", out, lang="en")

    text = pdf_text(out)
    assert "Weekly report Stadtbücherei Mitte, week 48/2026" in text
    assert row(text, "Study room south")[:6] == ["60", "30", "20", "10", "50", "%"]
    assert row(text, "Study room south Mon 23.11.") == [
        "720", "60", "4.0", "4", "50", "%", "2", "1", "10"
    ]  # fmt: skip
    flat = " ".join(text.split())
    assert "20 min to ventilate and 10 min critical" in flat
    assert "Devices lent: 2, reported overdue: 1." in flat
    assert len(pdf_pages(out, ARTIFACTS / "report")) == 1


def test_the_command_writes_html_with_the_same_figures(filled: Filled, tmp_path: Path):
    out = tmp_path / "report.html"
    cmd = [
        *(sys.executable, "-m", "gateway", "report", "--influx", f"{filled.influxd.url}?db={DB}"),
        *("--site", SITE, "--week", "2026-W48", "--lang", "en", "--out", str(out)),
    ]

    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)

    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert '<html lang="en">' in page
    cells = re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", page)
    assert cells[cells.index(ROOM_1) : cells.index(ROOM_1) + 6] == [
        ROOM_1, "60", "30", "20", "10", "50 %"
    ]  # fmt: skip
    assert "<svg" in page and "Minutes in use per day" in page, "the plots, text kept as text"


def test_a_week_without_data_says_so(filled: Filled, tmp_path: Path):
    out = tmp_path / "empty.pdf"
    make_report(filled.config, ["schule-nord"], "2026-W47", out, lang="de")
    assert "Für diese Woche liegen keine Daten vor." in pdf_text(out)


def test_bad_weeks_and_outputs_are_named():
    assert week_of("2026-W48") == (2026, 48)
    for bad in ("2026-48", "2026-W54", "W48"):
        with pytest.raises(ReportError, match="ISO week"):
            week_of(bad)
    config = parse_central(
        {"influx": {"url": "http://127.0.0.1:9", "database": DB}}, "t", environ={}
    )
    with pytest.raises(ReportError, match=r"\.pdf or \.html"):
        make_report(config, [SITE], "2026-W48", Path("report.docx"))
