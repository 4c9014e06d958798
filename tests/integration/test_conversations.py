"""Whole conversations through the real system: redis-server, action server, Rasa, gateway.

Every message is posted to /twilio/sms signed exactly as Twilio signs it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.core.formatting import long_date
from bot.core.settings import Settings
from tests.integration.conftest import LEDGER_DAY, Borrower, text

pytestmark = pytest.mark.integration

# Words that would disclose the loan to someone not yet verified.
DISCLOSURES = ("¥", "$", "2,600", "逾期", "overdue", "instalment", "欠款", "payment link", "还款链接")


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
    assert "Your loan has $2,600.00 overdue over 3 instalments" in verified
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
                   "Ann Lee", "欠你们多少钱", "how much do i owe", "漕溪北路", "555-0199", "Amy", "失业"):
        assert secret not in logged, f"{secret!r} found in the logs"
