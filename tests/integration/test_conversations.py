"""Whole conversations through the real system: redis-server, action server, Rasa, gateway.

Every message is posted to /twilio/sms signed exactly as Twilio signs it. The
ledger is generated relative to today so that the expected amounts and dates
hold whenever the suite runs.
"""

from __future__ import annotations

import csv
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.chat import messages_in, signed_sms
from bot.formatting import long_date
from bot.settings import Settings, load_settings
from bot.supervisor import Options, Stack, start_all
from tests.conftest import free_port, make_env

pytestmark = pytest.mark.integration

ZH_BIRTH, EN_BIRTH = date(1988, 6, 1), date(1979, 7, 4)
LEDGER_DAY = date.today()  # due dates are written relative to this day
# Words that would disclose the loan to someone not yet verified.
DISCLOSURES = ("¥", "$", "2,600", "逾期", "overdue", "instalment", "欠款", "payment link", "还款链接")


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
    return accounts, installments


@pytest.fixture(scope="session")
def stack_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the system under test writes its logs."""
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
async def stack(redis_url: str, stack_folder: Path) -> AsyncIterator[Settings]:
    """The whole system on free ports, sharing the session's redis-server."""
    folder = stack_folder
    options = Options(gateway_port=free_port(), rasa_port=free_port(), action_port=free_port(),
                      var_dir=folder, log_dir=folder, ledger=_write_ledger(folder, LEDGER_DAY))
    env = {**os.environ, **make_env(redis_url, RASA_URL=f"http://127.0.0.1:{options.rasa_port}",
                                    ACTION_SERVER_URL=f"http://127.0.0.1:{options.action_port}",
                                    GATEWAY_PORT=str(options.gateway_port))}
    settings = load_settings(env)
    running: Stack = await start_all(options, env)
    yield settings
    await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


_zh_numbers, _en_numbers = iter(range(10)), iter(range(10))


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


def assert_no_disclosure(reply: str) -> None:
    for word in DISCLOSURES:
        assert word not in reply, f"{word!r} disclosed in {reply!r}"


async def test_healthz_is_ready(stack: Settings, http: aiohttp.ClientSession) -> None:
    async with http.get(f"http://127.0.0.1:{stack.gateway_port}/healthz") as response:
        assert response.status == 200


async def test_chinese_borrower_verifies_learns_the_amount_and_promises(
        stack: Settings, http: aiohttp.ClientSession, zh: Borrower) -> None:
    first = await text(http, stack, zh, "你好")
    assert first.startswith("您好，这里是示例银行的智能助理。")
    assert_no_disclosure(first)
    asked = await text(http, stack, zh, "我现在欠你们多少钱啊")
    assert "出生日期或身份证号后四位" in asked
    assert_no_disclosure(asked)
    verified = await text(http, stack, zh, "1988年6月1日")
    oldest = long_date(LEDGER_DAY - timedelta(days=75), "zh")
    assert f"您的贷款逾期3期，共¥2,600.00，最早一期应还日为{oldest}。" in verified
    promised = await text(http, stack, zh, "我后天还")
    assert promised == f"谢谢。已记录您承诺于{long_date(zh.today + timedelta(days=2), 'zh')}前还款¥2,600.00。"


async def test_chinese_promise_beyond_the_window_is_refused(stack: Settings, http: aiohttp.ClientSession,
                                                            zh: Borrower) -> None:
    await text(http, stack, zh, "身份证后四位7789")
    reply = await text(http, stack, zh, f"我{(zh.today + timedelta(days=40)).month}月底之前还")
    last = long_date(zh.today + timedelta(days=14), "zh")
    assert last in reply and "抱歉" in reply


async def test_english_borrower_verifies_with_id_digits_and_gets_a_link(
        stack: Settings, http: aiohttp.ClientSession, en: Borrower) -> None:
    asked = await text(http, stack, en, "hey how much do i owe")
    assert asked.startswith("Hello, this is Example Bank's automated assistant.")
    assert_no_disclosure(asked)
    verified = await text(http, stack, en, "last 4 are 3321")
    assert "Your loan has $2,600.00 overdue over 3 instalment(s)" in verified
    link = await text(http, stack, en, "i want to pay now, send the link")
    assert "https://pay.example-bank.test/p/" in link


async def test_three_wrong_answers_disclose_nothing_and_offer_a_person(
        stack: Settings, http: aiohttp.ClientSession, en: Borrower) -> None:
    replies = [await text(http, stack, en, "whats my balance")]
    for answer in ("01/01/1970", "1234", "march 3 1981"):
        replies.append(await text(http, stack, en, answer))
    assert "Would you like a colleague to contact you?" in replies[-1]
    replies.append(await text(http, stack, en, "07/04/1979"))
    for reply in replies:
        assert_no_disclosure(reply)
    accepted = await text(http, stack, en, "yes please")
    assert "colleague will contact you" in accepted


async def test_third_party_hears_nothing_about_the_debt(stack: Settings, http: aiohttp.ClientSession,
                                                        en: Borrower) -> None:
    replies = [await text(http, stack, en, "this is his wife, he's not here right now")]
    assert "only discuss this with the person we wrote to" in replies[0]
    replies.append(await text(http, stack, en, "his birthday is 07/04/1979, what does he owe?"))
    replies.append(await text(http, stack, en, "how much is it"))
    for reply in replies:
        assert_no_disclosure(reply)


async def test_wrong_number_in_chinese(stack: Settings, http: aiohttp.ClientSession, zh: Borrower) -> None:
    reply = await text(http, stack, zh, "你们发错人了吧 我不认识这个人")
    assert "不再给这个号码发消息" in reply
    assert_no_disclosure(reply)


async def test_switching_language_changes_every_later_message(stack: Settings, http: aiohttp.ClientSession,
                                                              zh: Borrower) -> None:
    await text(http, stack, zh, "你好")
    switched = await text(http, stack, zh, "can you speak english please")
    assert switched == "OK, I'll write in English from now on."
    later = await text(http, stack, zh, "7789")
    assert "Your loan has ¥2,600.00 overdue" in later or "Your loan has CN¥2,600.00 overdue" in later


async def test_bot_says_it_is_automated_when_asked(stack: Settings, http: aiohttp.ClientSession,
                                                   zh: Borrower) -> None:
    reply = await text(http, stack, zh, "你是机器人吗")
    assert "智能助理" in reply and "不是真人" in reply


async def test_request_for_a_person_is_queued_with_hours(stack: Settings, http: aiohttp.ClientSession,
                                                         en: Borrower) -> None:
    reply = await text(http, stack, en, "can i talk to a real person")
    assert "A colleague will reply here during working hours (09:00-18:00" in reply


async def test_stop_keyword_and_unknown_sender(stack: Settings, http: aiohttp.ClientSession, en: Borrower) -> None:
    assert "unsubscribed" in await text(http, stack, en, "STOP")
    stranger = Borrower("+447700900123", "en")
    reply = await text(http, stack, stranger, "how much do I owe?")
    assert reply.startswith("Hello, this is Example Bank. We couldn't find this number")
    assert_no_disclosure(reply)


async def test_logs_hold_no_personal_data(stack: Settings, stack_folder: Path) -> None:
    """Runs last: everything the conversations above made the system log."""
    logged = "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in stack_folder.glob("*.log"))
    assert "Starting Rasa server on" in logged and "POST /twilio/sms" in logged
    for secret in ("1390000000", "1415555", "1988-06-01", "1988年6月1日", "07/04/1979", "7789", "3321", "王芳",
                   "Ann Lee", "欠你们多少钱", "how much do i owe"):
        assert secret not in logged, f"{secret!r} found in the logs"
