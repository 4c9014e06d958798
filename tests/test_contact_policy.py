"""The contact policy: hours across time zones and DST, call limits, hard stops, recorded reasons."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.contact.policy import Attempt, ContactPolicy, check_calls, check_hours, evaluate, load_rules
from bot.core import keys
from bot.core.crypto import pseudonym
from bot.services import Services

RULES, PREFIXES, CURRENCIES, DEFAULT = load_rules()
CN, US = RULES["CN"], RULES["US"]
UTC = ZoneInfo("UTC")
ZONES = ["Asia/Shanghai", "America/New_York", "America/Los_Angeles", "Europe/London", "Australia/Sydney",
         "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham"]
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))
attempts = st.lists(st.builds(Attempt, at=st.datetimes(min_value=datetime(2026, 5, 1), max_value=datetime(2026, 5, 20),
                                                       timezones=st.just(UTC)),
                              channel=st.sampled_from(["call", "sms"]), answered=st.booleans()), max_size=25)
NOW = datetime(2026, 5, 20, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, 00:00 in New York


@given(instant=instants, zone=st.sampled_from(ZONES))
def test_cn_hours_are_eight_to_ten_local(instant: datetime, zone: str) -> None:
    local = instant.astimezone(ZoneInfo(zone))
    assert check_hours(CN, instant, zone).allowed == (8 <= local.hour < 22)


@given(instant=instants, zone=st.sampled_from(ZONES))
def test_us_hours_are_eight_to_nine_local(instant: datetime, zone: str) -> None:
    local = instant.astimezone(ZoneInfo(zone))
    assert check_hours(US, instant, zone).allowed == (8 <= local.hour < 21)


@pytest.mark.parametrize(("utc", "allowed"), [
    ("2026-03-07T12:30", False),  # 07:30 EST, the day before clocks go forward
    ("2026-03-08T12:30", True),  # 08:30 EDT, the same UTC time a day later
    ("2026-10-31T12:30", True),  # 08:30 EDT, the day before clocks go back
    ("2026-11-01T12:30", False),  # 07:30 EST, the same UTC time after they went back at 02:00
    ("2026-11-02T01:59", True),  # 20:59 EST
    ("2026-11-02T02:00", False),  # 21:00 EST
])
def test_us_hours_follow_daylight_saving_in_new_york(utc: str, allowed: bool) -> None:
    instant = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert check_hours(US, instant, "America/New_York").allowed is allowed


def _unanswered_today(history: list[Attempt], zone: str) -> int:
    today = NOW.astimezone(ZoneInfo(zone)).date()
    return sum(a.channel == "call" and not a.answered and a.at.astimezone(ZoneInfo(zone)).date() == today
               for a in history if a.at <= NOW)


@given(history=attempts, zone=st.sampled_from(ZONES))
def test_cn_allows_a_call_only_under_six_unanswered_today(history: list[Attempt], zone: str) -> None:
    assert check_calls(CN, NOW, zone, history).allowed == (_unanswered_today(history, zone) < 6)


@given(history=attempts)
def test_us_allows_a_call_only_under_seven_in_seven_days_and_no_recent_talk(history: list[Attempt]) -> None:
    week = [a for a in history if a.channel == "call" and NOW - timedelta(days=7) < a.at <= NOW]
    expected = len(week) < 7 and not any(a.answered for a in week)
    assert check_calls(US, NOW, "America/New_York", history).allowed == expected


@settings(max_examples=200)
@given(history=attempts, extra=attempts, rules=st.sampled_from([CN, US]), zone=st.sampled_from(ZONES))
def test_more_attempts_never_unblock(history: list[Attempt], extra: list[Attempt], rules: object,
                                     zone: str) -> None:
    if not check_calls(rules, NOW, zone, history).allowed:  # type: ignore[arg-type]
        assert not check_calls(rules, NOW, zone, history + extra).allowed  # type: ignore[arg-type]


def test_reasons_are_readable() -> None:
    late = datetime(2026, 5, 20, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    assert evaluate(CN, late, "Asia/Shanghai", "sms", [], []).reason == (
        "outside allowed hours 08:00-22:00 (borrower's local time 23:30 Asia/Shanghai)")
    six = [Attempt(NOW - timedelta(minutes=10 * n), "call") for n in range(6)]
    assert evaluate(CN, NOW, "Asia/Shanghai", "call", six, []).reason == (
        "6 unanswered calls already today (limit 6)")
    assert evaluate(CN, NOW, "Asia/Shanghai", "sms", six, []).allowed
    talk = [Attempt(datetime(2026, 5, 15, 16, tzinfo=UTC), "call", answered=True)]
    assert evaluate(US, datetime(2026, 5, 20, 16, tzinfo=UTC), "America/New_York", "call", talk, []).reason == (
        "spoke with the borrower by phone on 2026-05-15; no calls for 7 days after a conversation")
    assert evaluate(CN, NOW, "Asia/Shanghai", "sms", [], ["opted out (keyword)"]).reason == "opted out (keyword)"


def test_unknown_channel_is_refused() -> None:
    with pytest.raises(ValueError):
        evaluate(CN, NOW, "Asia/Shanghai", "fax", [], [])


# --- over the records in Redis ---------------------------------------------------------------

NOON_SHANGHAI = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
NOON_LA = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)


@pytest.fixture
def policy(services: Services) -> ContactPolicy:
    return ContactPolicy(services.redis, services.vault, services.settings.hmac_secret)


async def _account(services: Services, account_id: str):  # type: ignore[no-untyped-def]
    account = await services.ledger.get(account_id)
    assert account is not None
    return account


async def test_jurisdiction_follows_the_phone_number_and_the_loan(services: Services, policy: ContactPolicy) -> None:
    assert policy.jurisdictions(await _account(services, "CN001")) == ["CN"]
    assert policy.jurisdictions(await _account(services, "US001")) == ["US"]
    abroad = dataclasses.replace(await _account(services, "US001"), phone="+8613812345678")
    assert policy.jurisdictions(abroad) == ["CN", "US"]


async def test_when_two_rule_sets_apply_the_stricter_wins(services: Services, policy: ContactPolicy) -> None:
    # 21:30 in Shanghai: allowed by China's 22:00, not by Regulation F's 21:00.
    abroad = dataclasses.replace(await _account(services, "US001"), phone="+8613812345678",
                                 timezone="Asia/Shanghai")
    decision = await policy.decide(abroad, "sms", datetime(2026, 11, 30, 13, 30, tzinfo=UTC))
    assert decision.reason == "outside allowed hours 08:00-21:00 (borrower's local time 21:30 Asia/Shanghai)"


async def test_a_clean_account_may_be_contacted_and_the_decision_is_recorded(
        services: Services, policy: ContactPolicy) -> None:
    decision = await policy.decide(await _account(services, "CN001"), "sms", NOON_SHANGHAI)
    assert decision.allowed and decision.reason == "allowed: inside allowed hours 08:00-22:00"
    [(_, entry)] = await services.redis.xrange(keys.CONTACT_DECISIONS)
    assert entry[b"account_id"] == b"CN001" and entry[b"allowed"] == b"1" and entry[b"jurisdiction"] == b"CN"


async def test_keyword_opt_out_stops_sms_and_a_spoken_one_stops_everything(
        services: Services, policy: ContactPolicy) -> None:
    account = await _account(services, "US001")
    conversation = pseudonym(account.phone, services.settings.hmac_secret)
    await services.records.opt_out(conversation, "keyword")
    assert (await policy.decide(account, "sms", NOON_LA)).reason == "opted out (keyword)"
    assert (await policy.decide(account, "call", NOON_LA)).allowed
    await services.records.opt_out(conversation, "conversation")
    assert not (await policy.decide(account, "call", NOON_LA)).allowed


@pytest.mark.parametrize(("record", "reason"), [
    ("dispute", "a dispute under review"),
    ("paid_claim", "a claim of payment under review"),
    ("promise", "promise to pay by 2026-12-05 not yet due"),
])
async def test_hard_stops(services: Services, policy: ContactPolicy, record: str, reason: str) -> None:
    account = await _account(services, "CN001")
    conversation = pseudonym(account.phone, services.settings.hmac_secret)
    if record == "dispute":
        await services.records.hand_off(conversation, "CN001", "dispute")
        await services.redis.delete(keys.handoff(conversation))
    elif record == "paid_claim":
        await services.records.paid_claim("CN001", conversation)
        await services.redis.delete(keys.handoff(conversation))
    else:
        await services.records.promise("CN001", conversation, date(2026, 12, 5), Decimal("3500.00"))
    decision = await policy.decide(account, "sms", NOON_SHANGHAI)
    assert not decision.allowed and decision.reason == reason


async def test_a_promise_that_fell_due_no_longer_stops_contact(services: Services, policy: ContactPolicy) -> None:
    account = await _account(services, "CN001")
    await services.records.promise("CN001", "c_x", date(2026, 11, 29), Decimal("3500.00"))
    assert (await policy.decide(account, "sms", NOON_SHANGHAI)).allowed


async def test_a_conversation_with_an_agent_stops_contact(services: Services, policy: ContactPolicy) -> None:
    account = await _account(services, "US001")
    await services.records.hand_off(pseudonym(account.phone, services.settings.hmac_secret), "US001",
                                    "request_human")
    assert (await policy.decide(account, "sms", NOON_LA)).reason == "the conversation is with an agent"


async def test_recorded_attempts_count_and_an_update_is_not_a_second_attempt(
        services: Services, policy: ContactPolicy) -> None:
    account = await _account(services, "US001")
    la = datetime.now(ZoneInfo("America/Los_Angeles"))
    noon = (la + timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)  # inside US hours
    for n in range(6):
        await policy.record_attempt("US001", f"CA{n}", Attempt(noon - timedelta(hours=n + 1), "call"))
    await policy.record_attempt("US001", "CA0", Attempt(noon - timedelta(hours=1), "call"))
    assert len(await policy.attempts("US001")) == 6
    await policy.record_attempt("US001", "CA6", Attempt(noon - timedelta(hours=7), "call"))
    decision = await policy.decide(account, "call", noon)
    assert decision.reason == "7 calls in the last 7 days (limit 7)"
