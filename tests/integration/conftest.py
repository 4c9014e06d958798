"""The whole system for integration tests: one per session, on free ports.

The ledger is generated relative to today so that the expected amounts and dates
hold whenever the suite runs.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import redis.asyncio
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService

from bot.core.settings import Settings, load_settings
from bot.ops.chat import messages_in, signed_sms
from bot.ops.supervisor import Options, Stack, start_all
from tests.conftest import TEST_LOGS, daytime_zone, free_port, make_env

ZH_BIRTH, EN_BIRTH = date(1988, 6, 1), date(1979, 7, 4)
LEDGER_DAY = date.today()
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"  # due dates are written relative to this day


@dataclass(frozen=True)
class Borrower:
    phone: str
    language: str

    @property
    def today(self) -> date:
        zone = "Asia/Shanghai" if self.language == "zh" else "America/Los_Angeles"
        return datetime.now(ZoneInfo(zone)).date()


def _write_ledger(folder: Path, today: date) -> tuple[Path, Path]:
    """Ten Chinese and ten English borrowers, each ¥/$2,600.00 overdue over three instalments."""
    accounts, installments = folder / "accounts.csv", folder / "installments.csv"
    with accounts.open("w", newline="", encoding="utf-8") as a, installments.open("w", newline="",
                                                                                   encoding="utf-8") as i:
        aw, iw = csv.writer(a), csv.writer(i)
        aw.writerow(["account_id", "name", "phone", "language", "timezone", "product", "currency", "id_last4",
                     "birth_date", "address", "employer", "region"])
        iw.writerow(["account_id", "installment_no", "due_date", "amount_due", "amount_paid", "paid_date"])
        for n in range(10):
            aw.writerow([f"Z{n}", "王芳", f"+86139000000{n:02d}", "zh", "Asia/Shanghai", "consumer", "CNY", "7789",
                         ZH_BIRTH.isoformat(), "", "", "SH"])
            aw.writerow([f"E{n}", "Ann Lee", f"+1415555{n:04d}", "en", "America/Los_Angeles", "auto", "USD", "3321",
                         EN_BIRTH.isoformat(), "", "", "CA"])
            for account in (f"Z{n}", f"E{n}"):
                iw.writerow([account, 1, (today - timedelta(days=75)).isoformat(), "1000.00", "0.00", ""])
                iw.writerow([account, 2, (today - timedelta(days=45)).isoformat(), "1000.00", "400.00",
                             (today - timedelta(days=40)).isoformat()])
                iw.writerow([account, 3, (today - timedelta(days=15)).isoformat(), "1000.00", "0.00", ""])
                iw.writerow([account, 4, (today + timedelta(days=15)).isoformat(), "1000.00", "0.00", ""])
        # Borrowers where it is daytime now, for the console's replies (sent only within contact hours).
        zone = daytime_zone()
        for n, language in enumerate(("en", "zh", "en", "zh")):
            aw.writerow([f"D{n}", "Day Borrower", f"+86137990000{n:02d}", language, zone, "consumer", "CNY", "5566",
                         EN_BIRTH.isoformat(), "", "", "SH"])
            iw.writerow([f"D{n}", 1, (today - timedelta(days=20)).isoformat(), "500.00", "0.00", ""])
    return accounts, installments


@pytest.fixture(scope="session")
def stack_folder() -> Path:
    """Where the system under test writes its logs (scanned for personal data by `make test`) and its ledger."""
    folder = TEST_LOGS / "stack"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="session")
def options(stack_folder: Path) -> Options:
    """Free ports for every component; no Twilio account, so the stand-in runs too.

    No campaign worker: this stack lives all session on the Redis the unit tests share, and a
    worker would take their queued jobs (tests/test_campaign_worker.py runs its own).
    """
    return Options(gateway_port=free_port(), rasa_port=free_port(), action_port=free_port(),
                   standin_port=free_port(), var_dir=stack_folder, log_dir=stack_folder,
                   ledger=_write_ledger(stack_folder, LEDGER_DAY), worker=False)


def _round_the_clock_sla(folder: Path) -> Path:
    """policy/sla.yml with a desk that works every hour of every day, so that reply clocks run whenever the
    suite does (the working-hours arithmetic itself is tests/test_sla.py's)."""
    text = (Path(__file__).parents[2] / "policy" / "sla.yml").read_text(encoding="utf-8")
    text = text.replace("days: [mon, tue, wed, thu, fri]", "days: [mon, tue, wed, thu, fri, sat, sun]")
    path = folder / "sla.yml"
    path.write_text(text.replace('hours: ["09:00", "18:00"]', 'hours: ["00:00", "23:59:59"]'), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def stack_env(redis_url: str, options: Options, stack_folder: Path) -> dict[str, str]:
    """The environment the system under test runs with (and a command run beside it needs)."""
    env = {**os.environ, **make_env(redis_url, RASA_URL=f"http://127.0.0.1:{options.rasa_port}",
                                    ACTION_SERVER_URL=f"http://127.0.0.1:{options.action_port}",
                                    GATEWAY_PORT=str(options.gateway_port),
                                    SLA_FILE=str(_round_the_clock_sla(stack_folder)))}
    env.pop("TWILIO_ACCOUNT_SID", None)
    return env


@pytest.fixture(scope="session")
async def stack(redis_url: str, options: Options, stack_env: dict[str, str]) -> AsyncIterator[Settings]:
    """The whole system on free ports, sharing the session's redis-server."""
    env = stack_env
    # Whatever other tests left (sealed under their own keys) is not this system's data.
    async with redis.asyncio.from_url(redis_url) as client:
        await client.flushdb()
    running: Stack = await start_all(options, env)
    yield load_settings({**env, "TWILIO_API_BASE_URL": f"http://127.0.0.1:{options.standin_port}"})
    await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


_zh_numbers, _en_numbers = iter(range(10)), iter(range(10))


@pytest.fixture(scope="session")
def daytime() -> tuple[Borrower, Borrower]:
    """The English and the Chinese borrower whose local time is daytime during the run."""
    return Borrower("+8613799000000", "en"), Borrower("+8613799000001", "zh")


@pytest.fixture(scope="session")
def desk_borrowers() -> tuple[Borrower, Borrower]:
    """Two more daytime borrowers (English, Chinese), for the console's desk features."""
    return Borrower("+8613799000002", "en"), Borrower("+8613799000003", "zh")


@pytest.fixture
def zh() -> Borrower:
    return Borrower(f"+86139000000{next(_zh_numbers):02d}", "zh")


@pytest.fixture
def en() -> Borrower:
    return Borrower(f"+1415555{next(_en_numbers):04d}", "en")


async def text(http: aiohttp.ClientSession, settings: Settings, borrower: Borrower, body: str) -> str:
    """Send one SMS as the borrower; return the bot's reply, messages joined."""
    form, signature = signed_sms(settings, borrower.phone, body)
    url = f"http://127.0.0.1:{settings.gateway_port}/twilio/sms"
    async with http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response:
        assert response.status == 200, await response.text()
        return "\n".join(messages_in(await response.text()))




def _chromium(profile: Path, window: str = "--window-size=1366,900",
              phone: dict[str, object] | None = None) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", window, "--lang=en-US"):
        options.add_argument(flag)
    if phone:
        options.add_experimental_option("mobileEmulation", phone)
    # Chromium's renderer times out under libfaketime (`make test-clock`): the browser keeps the real clock.
    real_clock = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}
    driver = webdriver.Chrome(service=ChromeService(CHROMEDRIVER, env=real_clock), options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium from Debian's packages, driven by its chromedriver (`make test` installs both)."""
    driver = _chromium(tmp_path / "chromium")
    yield driver
    driver.quit()


@pytest.fixture
def phone_browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """The same Chromium as a phone: a 390 x 844 touch screen with a phone's user agent."""
    driver = _chromium(tmp_path / "chromium-phone", "--window-size=390,844", phone={
        "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2.0, "touch": True},
        "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                     "Chrome/120.0 Mobile Safari/537.36"})
    yield driver
    driver.quit()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The integration tests run first, before the unit and fuzz tests empty the database; the at-rest
    checks read what the other integration tests left in Redis, so they run last among them."""
    integration = [i for i in items if "integration" in i.path.parts]
    at_rest = [i for i in integration if i.path.name == "test_at_rest.py"]
    items[:] = [i for i in integration if i not in at_rest] + at_rest + [i for i in items if i not in integration]
