"""Plans, grace periods, visit booking and consent over signed SMS, through the whole system.

Each borrower of the integration ledger has ¥/$2,600.00 overdue, 75 days past due
(Z*: consumer loan in Shanghai; E*: auto loan in California).
"""

from __future__ import annotations

import re
from datetime import timedelta

import aiohttp
import pytest

from bot.core import keys
from bot.core.formatting import long_date
from bot.core.settings import Settings
from bot.services import Services
from tests.integration.conftest import Borrower, text

pytestmark = pytest.mark.integration


async def test_chinese_plan_after_verification_with_the_reason_given_up_front(
        stack: Settings, http: aiohttp.ClientSession, zh: Borrower) -> None:
    asked = await text(http, stack, zh, "我失业了，没办法一次还清")
    assert "出生日期或身份证号后四位" in asked and "¥" not in asked
    offers = await text(http, stack, zh, "1988年6月1日")
    first_due = long_date(zh.today + timedelta(days=7), "zh")
    assert f"2）分6期，每期¥468.00（首期¥468.00，{first_due}还），共¥2,808.00" in offers
    summary = await text(http, stack, zh, "我选第二个方案")
    assert "共6期" in summary and "差额计入末期" in summary
    accepted = await text(http, stack, zh, "确认")
    assert "分期方案已生效：共6期，合计¥2,808.00" in accepted
    assert f"1. {first_due} ¥468.00" in accepted and "6. " in accepted
    assert "联系不上您时" in accepted
    declined = await text(http, stack, zh, "不同意")
    assert "不会收集或保存您家人的联系方式" in declined


async def test_english_grace_period_then_family_consent_and_its_withdrawal(
        stack: Settings, http: aiohttp.ClientSession, en: Borrower) -> None:
    await text(http, stack, en, "can you give me a few more days, i was in the hospital")
    offer = await text(http, stack, en, "last 4 are 3321")
    # 75 days past due: the auto policy's 61-90 bucket allows 5 days.
    most = long_date(en.today + timedelta(days=5), "en")
    assert f"We can give you 5 days: pay $2,600.00 by {most}." in offer
    refused = await text(http, stack, en, f"could i have until {long_date(en.today + timedelta(days=12), 'en')}")
    assert f"until {most} at the latest" in refused
    accepted = await text(http, stack, en, "ok yes")
    assert f"please pay $2,600.00 by {most}" in accepted and "family member" in accepted
    asked = await text(http, stack, en, "yes that's fine")
    assert "name, how they are related to you, and their phone number" in asked
    saved = await text(http, stack, en, "my sister Amy 415-555-0199")
    assert "********0199" in saved
    withdrawn = await text(http, stack, en, "i withdraw my consent, delete my sister's number")
    assert "consent is withdrawn" in withdrawn


async def test_chinese_visit_booked_then_moved(stack: Settings, http: aiohttp.ClientSession, zh: Borrower) -> None:
    await text(http, stack, zh, "我想预约一下上门核实")
    explained = await text(http, stack, zh, "身份证后四位7789")
    assert "身份证、借款合同和收入证明" in explained and "家里还是单位" in explained
    assert "家庭住址" in await text(http, stack, zh, "来我家吧")
    assert "请发送您的家庭住址" in await text(http, stack, zh, "同意")
    assert "哪天、什么时间方便" in await text(http, stack, zh, "上海市徐汇区漕溪北路88号3楼")
    offered = await text(http, stack, zh, "下周六上午")
    assert "1）" in offered, offered
    booked = await text(http, stack, zh, "1")
    assert "已预约：" in booked and "漕溪北路88号3楼" in booked
    assert re.search(r"来访人员（姓名 工号）：\S+ SH-\d{4}、\S+ SH-\d{4}", booked)
    first = booked.split("，地点")[0]

    offered = await text(http, stack, zh, "能改个时间吗，改到下周一下午")
    assert "您已预约" in offered and "1）" in offered
    moved = await text(http, stack, zh, "2")
    assert "已预约：" in moved and moved.split("，地点")[0] != first


async def test_no_arrangement_key_names_hold_personal_data(stack: Settings) -> None:
    svc = Services(stack)
    try:
        names = [k.decode() async for k in svc.redis.scan_iter(match="*")]
    finally:
        await svc.close()
    assert any(n.startswith(keys.arrangement("")) for n in names)
    assert any(n.startswith("visit:booking:") for n in names)
    for name in names:
        assert not re.search(r"1390000000|1415555|4155550199|漕溪|Amy|sister|王芳|Ann", name), name
