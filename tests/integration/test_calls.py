"""Outbound reminders through the real twilio library, the stand-in and the whole system.

An outbound call is driven by the stand-in like a borrower would: it fetches the
call's TwiML from /twilio/voice (signed), keys the ID digits, then says when
they will pay, in each language.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.contact.outbound import Sender, twilio_client
from bot.contact.policy import ContactPolicy
from bot.core.formatting import long_date
from bot.core.settings import Settings
from bot.ops.supervisor import Options
from bot.services import Services
from tests.integration.conftest import Borrower

pytestmark = pytest.mark.integration


def inside_hours() -> datetime:
    """02:00 UTC today: 10:00 in Shanghai and the evening before in Los Angeles."""
    return datetime.now(ZoneInfo("UTC")).replace(hour=2, minute=0, second=0, microsecond=0)


async def run_call(stack: Settings, options: Options, http: aiohttp.ClientSession, account_id: str,
                   script: list[dict[str, str]]) -> list[str]:
    standin = f"http://127.0.0.1:{options.standin_port}"
    svc = Services(stack)
    account = await svc.ledger.get(account_id)
    assert account is not None
    async with http.put(f"{standin}/standin/scripts/{account.phone}", json=script) as response:
        assert response.status == 204
    client = twilio_client(stack)
    sent = await Sender(client, stack, ContactPolicy(svc.redis, svc.vault, stack.hmac_secret), svc.redis,
                        clock=inside_hours).call(account, f"{account_id}:call:test")
    await client.http_client.close()
    await svc.close()
    assert sent.outcome == "queued", sent.reason
    for _ in range(200):
        async with http.get(f"{standin}/standin/calls") as response:
            call = next(c for c in await response.json() if c["sid"] == sent.sid)
        if call["status"] == "completed":
            return list(call["transcript"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"the call never completed: {call}")


async def test_an_outbound_call_in_chinese_ends_in_a_promise(stack: Settings, options: Options,
                                                             http: aiohttp.ClientSession) -> None:
    said = await run_call(stack, options, http, "Z9", [{"Digits": "7789"}, {"SpeechResult": "我后天还"}])
    assert said[0] == "您好，这里是示例银行的智能助理。"
    assert said.count("您好，这里是示例银行的智能助理。") == 1
    assert "为保护您的隐私，请说出您的出生日期，或在按键上输入身份证号后四位，末位是X请按星号键。" in said
    assert any("2,600 人民币" in s for s in said)
    day_after_tomorrow = Borrower("", "zh").today + timedelta(days=2)
    assert said[-1] == f"谢谢。已记录您承诺于{long_date(day_after_tomorrow, 'zh')}前还款2,600 人民币。"


async def test_an_outbound_call_in_english_ends_in_a_promise(stack: Settings, options: Options,
                                                             http: aiohttp.ClientSession) -> None:
    said = await run_call(stack, options, http, "E9",
                          [{"Digits": "3321"}, {"SpeechResult": "i can pay it the day after tomorrow"}])
    assert said[0] == "Hello, this is Example Bank's automated assistant."
    assert any("2,600 US dollars" in s for s in said)
    promised = long_date(Borrower("", "en").today + timedelta(days=2), "en")
    assert said[-1] == f"Thank you. We've noted that you will pay 2,600 US dollars by {promised}."


async def test_an_outbound_sms_reaches_the_stand_in(stack: Settings, options: Options,
                                                    http: aiohttp.ClientSession) -> None:
    svc = Services(stack)
    account = await svc.ledger.get("E8")
    assert account is not None
    client = twilio_client(stack)
    sender = Sender(client, stack, ContactPolicy(svc.redis, svc.vault, stack.hmac_secret), svc.redis,
                    clock=inside_hours)
    sent = await sender.sms(account, "Example Bank has a message about your account. Reply here or call 95588.",
                            "E8:sms:test")
    await client.http_client.close()
    await svc.close()
    async with http.get(f"http://127.0.0.1:{options.standin_port}/standin/messages") as response:
        messages: list[dict[str, Any]] = await response.json()
    assert [m["to"] for m in messages if m["sid"] == sent.sid] == [account.phone]
