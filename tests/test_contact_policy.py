"""The contact policy: every rule set's hours across time zones and DST, call and contact limits, effective
conversations, opt-outs per medium, what a message may say, hard stops, recorded reasons and rules."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.contact import sms
from bot.contact.policy import (
    OPT_OUT_MEDIUM,
    Attempt,
    ContactPolicy,
    Decision,
    RulesError,
    RuleSet,
    Situation,
    check_calls,
    check_hours,
    evaluate,
    load_rules,
)
from bot.core import keys
from bot.core.crypto import pseudonym
from bot.services import Services

RULES = load_rules()
GBT, CBA, REG_F, TCPA, NYC = (RULES.rule_sets[n] for n in
                              ("GBT-45251-2025", "CBA-2026", "REG-F", "TCPA-REVOCATION-2025", "NYC-DCWP-2026"))
UTC = ZoneInfo("UTC")
ZONES = ["Asia/Shanghai", "America/New_York", "America/Los_Angeles", "Europe/London", "Australia/Sydney",
         "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham"]
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))
attempts = st.lists(st.builds(Attempt, at=st.datetimes(min_value=datetime(2026, 5, 1), max_value=datetime(2026, 5, 20),
                                                       timezones=st.just(UTC)),
                              channel=st.sampled_from(["call", "sms"]), answered=st.booleans(),
                              initiated=st.booleans()), max_size=25)
NOW = datetime(2026, 5, 20, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, 00:00 in New York
NOON_NEW_YORK = datetime(2026, 10, 20, 16, 0, tzinfo=UTC)  # after NYC-DCWP-2026 came into force


def sets(jurisdiction: str, day: date | None = None) -> list[RuleSet]:
    return RULES.in_force([jurisdiction], day or NOW.date())


def decide(jurisdiction: str, now: datetime, zone: str, channel: str = "sms", history: list[Attempt] | None = None,
           **situation: object) -> Decision:
    found = Situation(now, zone, channel, attempts=tuple(history or ()), **situation)  # type: ignore[arg-type]
    return evaluate(RULES, sets(jurisdiction, now.date()), found)


@given(instant=instants, zone=st.sampled_from(ZONES), channel=st.sampled_from(["sms", "call"]),
       purpose=st.sampled_from(["reminder", "agent_reply"]))
def test_cn_hours_are_eight_to_ten_local_for_every_kind_of_contact(instant: datetime, zone: str, channel: str,
                                                                    purpose: str) -> None:
    local = instant.astimezone(ZoneInfo(zone))
    decision = decide("CN", instant, zone, channel, purpose=purpose)
    assert decision.allowed == (8 <= local.hour < 22)
    if not decision.allowed:
        assert decision.rule == "GBT-45251-2025.allowed_hours"
    assert check_hours(CBA, instant, zone, "visit").allowed == (8 <= local.hour < 22)


@given(instant=instants, zone=st.sampled_from(ZONES))
def test_us_hours_are_eight_to_nine_local(instant: datetime, zone: str) -> None:
    local = instant.astimezone(ZoneInfo(zone))
    assert check_hours(REG_F, instant, zone).allowed == (8 <= local.hour < 21)
    assert check_hours(NYC, instant, zone, "agent_reply").allowed == (8 <= local.hour < 21)


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
    assert check_hours(REG_F, instant, "America/New_York").allowed is allowed
    assert decide("US-NYC", instant, "America/New_York").allowed is allowed


def _today(history: list[Attempt], zone: str) -> list[Attempt]:
    today = NOW.astimezone(ZoneInfo(zone)).date()
    return [a for a in history
            if a.channel == "call" and a.at <= NOW and a.at.astimezone(ZoneInfo(zone)).date() == today]


@given(history=attempts, zone=st.sampled_from(ZONES))
def test_cn_calls_only_under_six_unanswered_and_three_conversations_today(history: list[Attempt], zone: str) -> None:
    today = _today(history, zone)
    unanswered, talks = sum(not a.answered for a in today), sum(a.answered for a in today)
    assert check_calls(CBA, NOW, zone, history).allowed == (unanswered < 6)
    assert check_calls(GBT, NOW, zone, history).allowed == (talks < 3)
    if zone == "Asia/Shanghai":  # NOW is noon there: only the call limits can block
        assert decide("CN", NOW, zone, "call", history).allowed == (unanswered < 6 and talks < 3)


@given(history=attempts)
def test_us_allows_a_call_only_under_seven_in_seven_days_and_no_recent_talk(history: list[Attempt]) -> None:
    week = [a for a in history if a.channel == "call" and NOW - timedelta(days=7) < a.at <= NOW]
    expected = len(week) < 7 and not any(a.answered for a in week)
    assert check_calls(REG_F, NOW, "America/New_York", history).allowed == expected


@given(history=attempts, channel=st.sampled_from(["sms", "call"]))
def test_nyc_caps_contacts_by_any_medium_per_account_not_replies(history: list[Attempt], channel: str) -> None:
    now = NOON_NEW_YORK
    shifted = [dataclasses.replace(a, at=a.at + (now - NOW)) for a in history]
    started = [a for a in shifted if now - timedelta(days=7) < a.at <= now and a.initiated]
    calls_ok = check_calls(REG_F, now, "America/New_York", shifted).allowed or channel == "sms"
    decision = decide("US-NYC", now, "America/New_York", channel, shifted)
    assert decision.allowed == (len(started) < 3 and calls_ok)
    if len(started) >= 3:
        assert decision.rule in ("NYC-DCWP-2026.max_contacts_in_window", "REG-F.max_calls_in_window",
                                 "REG-F.quiet_days_after_conversation")


def test_a_rule_set_applies_from_the_day_it_came_into_force() -> None:
    three_sms = [Attempt(NOON_NEW_YORK - timedelta(days=d), "sms") for d in (1, 2, 3)]
    assert decide("US-NYC", NOON_NEW_YORK, "America/New_York", "sms", three_sms).rule == (
        "NYC-DCWP-2026.max_contacts_in_window")
    august = NOON_NEW_YORK.replace(month=8)
    earlier = [dataclasses.replace(a, at=a.at.replace(month=8)) for a in three_sms]
    assert decide("US-NYC", august, "America/New_York", "sms", earlier).allowed
    assert [r.name for r in sets("CN", date(2025, 6, 1))] == ["GBT-45251-2025"]
    assert sets("CN", date(2025, 2, 27)) == []


@settings(max_examples=200)
@given(history=attempts, extra=attempts, jurisdiction=st.sampled_from(["CN", "US", "US-NYC"]),
       zone=st.sampled_from(ZONES), channel=st.sampled_from(["sms", "call"]))
def test_more_attempts_never_unblock(history: list[Attempt], extra: list[Attempt], jurisdiction: str,
                                     zone: str, channel: str) -> None:
    now = NOON_NEW_YORK
    history, extra = ([dataclasses.replace(a, at=a.at + (now - NOW)) for a in h] for h in (history, extra))
    if not decide(jurisdiction, now, zone, channel, history).allowed:
        assert not decide(jurisdiction, now, zone, channel, history + extra).allowed


@given(jurisdiction=st.sampled_from(["CN", "US", "US-NYC"]),
       source=st.sampled_from(["keyword", "call_key", "conversation", "representative", "wrong_number"]),
       channel=st.sampled_from(["sms", "call"]))
def test_an_opt_out_stops_its_medium_and_under_tcpa_every_medium(jurisdiction: str, source: str,
                                                                  channel: str) -> None:
    medium = OPT_OUT_MEDIUM.get(source, "all")
    when, zone = (NOW, "Asia/Shanghai") if jurisdiction == "CN" else (NOON_NEW_YORK, "America/New_York")
    decision = decide(jurisdiction, when, zone, channel, opt_out=(medium, source))
    across = jurisdiction != "CN"  # TCPA-REVOCATION-2025 is in both US jurisdictions
    assert decision.allowed == (not across and medium not in ("all", channel))
    if not decision.allowed and medium not in ("all", channel):
        assert decision.rule == "TCPA-REVOCATION-2025.opt_out_scope"


def test_nyc_alone_keeps_an_opt_out_to_its_medium() -> None:
    situation = Situation(NOON_NEW_YORK, "America/New_York", "call", opt_out=("sms", "keyword"))
    assert evaluate(RULES, [REG_F, NYC], situation).allowed
    assert not evaluate(RULES, [REG_F, NYC], dataclasses.replace(situation, channel="sms")).allowed


def test_every_tcpa_revocation_word_is_an_sms_keyword() -> None:
    for word in TCPA.revocation_words:
        for written in (word, word.upper(), word.title() + ".", word.replace(" ", "-")):
            assert sms.keyword(written) == "opt_out", written
    assert TCPA.revocation_key == "8" and RULES.revocation_key(["US"], NOW.date()) == "8"
    assert RULES.revocation_key(["CN"], NOW.date()) is None


@pytest.mark.parametrize(("body", "rule"), [
    ("您可以先借网贷还上这笔欠款", "CBA-2026.forbidden_content.new_loan"),
    ("建议您以贷养贷，先把这期还了", "CBA-2026.forbidden_content.new_loan"),
    ("You could take out a payday loan to pay this off", "CBA-2026.forbidden_content.new_loan"),
    ("Why not borrow money from a friend to repay us", "CBA-2026.forbidden_content.new_loan"),
    ("逾期需另外收取200元上门费", "CBA-2026.forbidden_content.extra_fees"),
    ("We will add a $35 collection fee to your balance", "CBA-2026.forbidden_content.extra_fees"),
    ("示例银行：我们不收取任何手续费，请按时还款。", None),
    ("Example Bank: we never charge a collection fee for a plan.", None),
    ("Example Bank: you can pay by card or bank transfer.", None),
])
def test_no_message_pushes_a_new_loan_or_an_extra_fee(body: str, rule: str | None) -> None:
    for purpose in ("reminder", "agent_reply"):
        decision = decide("CN", NOW, "Asia/Shanghai", body=body, purpose=purpose,
                          history=[Attempt(NOW - timedelta(days=1), "sms")])
        assert decision.rule == rule if rule else decision.allowed, decision


def test_a_first_sms_names_the_bank_where_the_rules_ask_it() -> None:
    unnamed = "Please call us back about your account."
    assert decide("CN", NOW, "Asia/Shanghai", body=unnamed).rule == "CBA-2026.identify_at_first_contact"
    assert decide("CN", NOW, "Asia/Shanghai", body="示例银行：" + unnamed).allowed
    assert decide("CN", NOW, "Asia/Shanghai", body=unnamed, history=[Attempt(NOW - timedelta(days=2), "sms")]).allowed
    assert decide("CN", NOW, "Asia/Shanghai", body=unnamed, purpose="agent_reply").allowed  # they wrote first
    assert decide("US", NOW + timedelta(hours=14), "America/New_York", body=unnamed).allowed


def test_effective_conversations_limit_calls_not_texts() -> None:
    talks = [Attempt(NOW - timedelta(hours=h), "call", answered=True) for h in (1, 2, 3)]
    blocked = decide("CN", NOW, "Asia/Shanghai", "call", talks)
    assert blocked.rule == "GBT-45251-2025.max_effective_conversations_per_day"
    assert blocked.reason == "3 phone conversations with the borrower already today (limit 3)"
    assert decide("CN", NOW, "Asia/Shanghai", "call", talks[:2]).allowed
    assert decide("CN", NOW, "Asia/Shanghai", "sms", talks).allowed
    yesterday = [dataclasses.replace(a, at=a.at - timedelta(days=1)) for a in talks]
    assert decide("CN", NOW, "Asia/Shanghai", "call", yesterday).allowed


def test_reasons_are_readable_and_name_their_rule() -> None:
    late = datetime(2026, 5, 20, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    assert decide("CN", late, "Asia/Shanghai") == Decision(
        False, "outside allowed hours 08:00-22:00 (borrower's local time 23:30 Asia/Shanghai)",
        "GBT-45251-2025.allowed_hours")
    six = [Attempt(NOW - timedelta(minutes=10 * n), "call") for n in range(6)]
    assert decide("CN", NOW, "Asia/Shanghai", "call", six) == Decision(
        False, "6 unanswered calls already today (limit 6)", "CBA-2026.max_unanswered_calls_per_day")
    assert decide("CN", NOW, "Asia/Shanghai", "sms", six) == Decision(
        True, "allowed: inside allowed hours 08:00-22:00", "GBT-45251-2025+CBA-2026")
    talk = [Attempt(datetime(2026, 5, 15, 16, tzinfo=UTC), "call", answered=True)]
    assert decide("US", datetime(2026, 5, 20, 16, tzinfo=UTC), "America/New_York", "call", talk).reason == (
        "spoke with the borrower by phone on 2026-05-15; no calls for 7 days after a conversation")
    stopped = decide("CN", NOW, "Asia/Shanghai", stops=(("hold.dispute", "a dispute under review"),))
    assert stopped == Decision(False, "a dispute under review", "hold.dispute")


def test_unknown_channel_is_refused() -> None:
    with pytest.raises(ValueError):
        decide("CN", NOW, "Asia/Shanghai", "fax")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("third_parties: never_contacted", "third_parties: when_unreachable", "third_parties can only be never_contacted"),
    ("opt_out_scope: all", "opt_out_scope: everything", "opt_out_scope must be medium or all"),
    ("hours_cover: [sms, call, agent_reply, visit]", "hours_cover: [sms, fax]", "hours_cover names ['fax']"),
    ("max_calls_in_window: 7", "max_texts_per_hour: 3", "unexpected keyword argument 'max_texts_per_hour'"),
    ("forbidden_content: [new_loan, extra_fees]", "forbidden_content: [threats]",
     "forbidden_content ['threats'] has no"),
    ("  US: [REG-F, TCPA-REVOCATION-2025]", "  US: [REG-F, TCPA-2099]", "rule set ['TCPA-2099'] is not defined"),
    ("confirmation: {max_texts: 1, within_minutes: 5}", "confirmation: {max_texts: 0}", "confirmation needs"),
])
def test_a_rules_file_the_code_cannot_enforce_is_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = (Path(__file__).parents[1] / "policy" / "contact.yml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "contact.yml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(RulesError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_rules(path)


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


async def test_in_china_a_keyword_opt_out_stops_sms_and_a_spoken_one_stops_everything(
        services: Services, policy: ContactPolicy) -> None:
    account = await _account(services, "CN001")
    conversation = pseudonym(account.phone, services.settings.hmac_secret)
    await services.records.opt_out(conversation, "keyword")
    assert (await policy.decide(account, "sms", NOON_SHANGHAI)) == Decision(False, "opted out (keyword)", "opt_out")
    assert (await policy.decide(account, "call", NOON_SHANGHAI)).allowed
    await services.records.opt_out(conversation, "conversation")
    assert not (await policy.decide(account, "call", NOON_SHANGHAI)).allowed


@pytest.mark.parametrize("source", ["keyword", "call_key"])
async def test_in_the_us_any_opt_out_stops_calls_and_texts(services: Services, policy: ContactPolicy,
                                                          source: str) -> None:
    account = await _account(services, "US001")
    await services.records.opt_out(pseudonym(account.phone, services.settings.hmac_secret), source)
    for channel in ("sms", "call"):
        decision = await policy.decide(account, channel, NOON_LA)
        assert not decision.allowed and decision.rule in ("opt_out", "TCPA-REVOCATION-2025.opt_out_scope")
    [*_, (_, entry)] = await services.redis.xrange(keys.CONTACT_DECISIONS)
    assert entry[b"rule"] in (b"opt_out", b"TCPA-REVOCATION-2025.opt_out_scope")


async def test_a_new_york_city_number_falls_under_the_city_rules_too(services: Services,
                                                                    policy: ContactPolicy) -> None:
    account = await _account(services, "US002")  # +1212
    assert policy.jurisdictions(account) == ["US", "US-NYC"]
    october = datetime(2026, 10, 20, 16, 0, tzinfo=UTC)
    for n in range(3):
        await policy.record_attempt("US002", f"SM{n}", Attempt(october - timedelta(days=n + 1), "sms"))
    await policy.record_attempt("US002", "SMr", Attempt(october - timedelta(hours=1), "sms", initiated=False))
    decision = await policy.decide(account, "sms", october)
    assert decision.rule == "NYC-DCWP-2026.max_contacts_in_window"
    assert decision.reason == "3 contacts by any medium in the last 7 days (limit 3 per account)"


async def test_visits_are_offered_only_inside_every_rule_sets_hours(services: Services, policy: ContactPolicy) -> None:
    account = await _account(services, "CN001")
    shanghai = ZoneInfo("Asia/Shanghai")
    evening = datetime(2026, 11, 30, 21, 0, tzinfo=shanghai)
    assert policy.visit_allowed(account, evening - timedelta(hours=1), evening).allowed
    late = policy.visit_allowed(account, evening, evening + timedelta(hours=1, minutes=1))
    assert not late.allowed and late.rule == "GBT-45251-2025.allowed_hours"
    assert not policy.visit_allowed(account, evening.replace(hour=7), evening.replace(hour=8)).allowed


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
    noon = NOON_LA
    for n in range(6):
        await policy.record_attempt("US001", f"CA{n}", Attempt(noon - timedelta(hours=n + 1), "call"))
    await policy.record_attempt("US001", "CA0", Attempt(noon - timedelta(hours=1), "call"))
    assert len(await policy.attempts("US001", now=noon)) == 6
    await policy.record_attempt("US001", "CA6", Attempt(noon - timedelta(hours=7), "call"))
    decision = await policy.decide(account, "call", noon)
    assert decision.reason == "7 calls in the last 7 days (limit 7)"


def test_the_docs_table_lists_every_rule_and_only_tests_that_exist() -> None:
    root = Path(__file__).parents[1]
    table = [line for line in (root / "docs" / "contact-rules.md").read_text(encoding="utf-8").splitlines()
             if line.startswith("| `")]
    named = {cell.strip("` ") for line in table for cell in [line.split("|")[1]]}
    limits = {f"{r.name}.{f.name}" for r in RULES.rule_sets.values() for f in dataclasses.fields(r)
              if f.name not in ("name", "in_force", "hours_cover", "call_window_days", "contact_window_days")
              and getattr(r, f.name) not in (None, False, (), "medium")}
    limits |= {f"{r.name}.forbidden_content.{c}" for r in RULES.rule_sets.values() for c in r.forbidden_content}
    limits -= {f"{r.name}.forbidden_content" for r in RULES.rule_sets.values()}
    assert limits <= named, sorted(limits - named)
    for line in table:
        file = "tests/test_contact_policy.py"
        for ref in line.split("|")[4].replace("`", "").split(","):
            ref = ref.strip()
            if ref == "-":
                continue
            path, _, test = ref.rpartition("::")
            file = (path if path.startswith("tests/") else f"tests/{path}") if path else file
            assert f"def {test}(" in (root / file).read_text(encoding="utf-8"), ref
