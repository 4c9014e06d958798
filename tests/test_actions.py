"""Actions run on trackers, against the real Redis with the sample ledger.

Whole event lists are asserted, and every message is checked for what it must
not say before verification.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.arrangements import ActionHardship, ActionVisit
from actions.balance import ActionBalance
from actions.handoff import ActionAffirm, ActionDeny, ActionFallback, ActionHandOff
from actions.identity import ActionStopContact, ActionThirdParty, ActionWrongNumber
from actions.language import ActionSwitchLanguage, wanted_language
from actions.payment import ActionAlreadyPaid, ActionPayNow, ActionPromiseToPay
from actions.session import ActionSessionStart
from actions.smalltalk import ActionBotChallenge, ActionGoodbye, ActionOutOfScope, ActionThank
from actions.verification import ActionGreet, ActionVerify
from bot.core import keys
from bot.core.crypto import pseudonym
from bot.dialogue import conversation
from bot.domain.payments import read_token
from bot.services import Services

ROOT = Path(__file__).resolve().parent.parent
TRACKERS = Path(__file__).resolve().parent / "trackers"
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
PHONES = {"CN001": "+8613800138000", "US001": "+14155550123"}
TODAY = date(2026, 11, 29)
# Nothing about the loan may appear in a message to an unverified person.
DISCLOSURES = ("¥", "$", "3,500", "1,237", "2026年9月15日", "October 1", "逾期", "overdue", "instal", "分期")


@pytest.fixture(autouse=True)
def _fixed_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conversation, "local_today", lambda account: TODAY)


def _sender(svc: Services, account_id: str) -> str:
    return pseudonym(PHONES[account_id], svc.settings.hmac_secret)


def load_tracker(svc: Services, name: str) -> Tracker:
    """A tracker from tests/trackers, with the sender's pseudonym filled in."""
    state = json.loads((TRACKERS / name).read_text(encoding="utf-8"))
    account_id = state["sender_id"].strip("{}")
    state["sender_id"] = _sender(svc, account_id)
    return Tracker.from_dict(state)


def make_tracker(svc: Services, account_id: str, text: str, intent: str, previous_intent: str | None = None,
                 verified: bool = False, channel: str = "sms", **slots: Any) -> Tracker:
    """A tracker whose latest message is ``text`` classified as ``intent``."""
    language = "zh" if account_id.startswith("CN") else "en"
    if verified:
        slots["verified_account"] = account_id
    events: list[dict[str, Any]] = []
    if previous_intent:
        events.append({"event": "user", "text": "…", "parse_data": {"intent": {"name": previous_intent}}})
    events.append({"event": "user", "text": text, "parse_data": {"intent": {"name": intent}}})
    return Tracker(
        sender_id=_sender(svc, account_id),
        slots={"language": language, "verified_account": None, "awaiting": None, "pending": None, **slots},
        latest_message={"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": [],
                        "metadata": {"channel": channel}},
        events=events, paused=False, followup_action=None, active_loop={}, latest_action_name="action_listen",
    )


async def run(action: Any, tracker: Tracker) -> tuple[list[dict[str, Any]], list[str]]:
    events, messages, _ = await run_with_payloads(action, tracker)
    return events, messages


async def run_with_payloads(action: Any, tracker: Tracker) -> tuple[list[dict[str, Any]], list[str],
                                                                     list[dict[str, Any]]]:
    """The events, the texts, and the custom payloads for the voice gateway."""
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, tracker, DOMAIN)
    texts = [m.get("text") or m.get("response") for m in dispatcher.messages if not m.get("custom")]
    return events, texts, [m["custom"] for m in dispatcher.messages if m.get("custom")]


def assert_discloses_nothing(messages: list[str]) -> None:
    for message in messages:
        for word in DISCLOSURES:
            assert word not in message, f"{word!r} disclosed in {message!r}"


async def test_session_start_sets_language_and_introduces_the_bank(services: Services) -> None:
    events, messages = await run(ActionSessionStart(), make_tracker(services, "CN001", "你好", "greet"))
    assert events == [SessionStarted(), SlotSet("language", "zh"), SlotSet("bank_phone", "95588"),
                      SlotSet("agent_hours", "09:00-18:00"), ActionExecuted("action_listen")]
    assert messages == ["您好，这里是示例银行的智能助理。"]


async def test_unverified_balance_question_asks_for_verification(services: Services) -> None:
    events, messages = await run(ActionBalance(), load_tracker(services, "unverified_asks_balance_zh.json"))
    assert events == [SlotSet("awaiting", "verification"), SlotSet("pending", "ask_balance")]
    assert messages == ["为保护您的隐私，请回复您的出生日期或身份证号后四位。"]


async def test_right_birth_date_verifies_and_discloses(services: Services) -> None:
    events, messages = await run(ActionVerify(), load_tracker(services, "answers_birth_date_zh.json"))
    assert events == [SlotSet("verified_account", "CN001"), SlotSet("awaiting", None), SlotSet("pending", None)]
    assert messages[0] == "谢谢，身份已核实。"
    assert messages[1] == "您的贷款逾期3期，共¥3,500.00，最早一期应还日为2026年9月15日。"


async def test_third_party_hears_nothing_even_with_the_right_birth_date(services: Services) -> None:
    await services.records.block_disclosure(_sender(services, "US001"), "third_party")
    events, messages = await run(ActionVerify(), load_tracker(services, "third_party_then_answers_en.json"))
    assert events == []
    assert messages == ["Sorry, we can only discuss this with the account holder. They can call us on 95588."]
    assert_discloses_nothing(messages)


async def test_three_wrong_answers_end_with_an_offer_of_a_person(services: Services) -> None:
    all_messages = []
    for _ in range(3):
        tracker = make_tracker(services, "US001", "01/01/1970", "inform", awaiting="verification")
        events, messages = await run(ActionVerify(), tracker)
        all_messages += messages
    assert events == [SlotSet("awaiting", "handoff_offer"), SlotSet("pending", None)]
    assert await services.records.verification_failures("US001") == 3
    assert "Would you like a colleague to contact you?" in all_messages[-1]
    assert_discloses_nothing(all_messages)
    events, messages = await run(ActionAffirm(), make_tracker(services, "US001", "yes", "affirm",
                                                              awaiting="handoff_offer"))
    assert events == [SlotSet("awaiting", None)]
    item = await services.redis.hgetall(keys.handoff(_sender(services, "US001")))
    assert item[b"reason"] == b"verification_failed"
    assert_discloses_nothing(messages)


async def test_after_three_failures_a_right_answer_is_refused_even_in_a_new_session(services: Services) -> None:
    for _ in range(3):
        await services.records.verification_failed("US001")
    tracker = make_tracker(services, "US001", "07/04/1979", "inform", awaiting="verification")
    events, messages = await run(ActionVerify(), tracker)
    assert events == []
    assert_discloses_nothing(messages)


async def test_id_digits_verify_in_english_and_pending_pay_now_sends_the_link(services: Services) -> None:
    tracker = make_tracker(services, "US001", "its 4421", "inform", awaiting="verification", pending="pay_now")
    events, messages = await run(ActionVerify(), tracker)
    assert events[0] == SlotSet("verified_account", "US001")
    assert messages[1] == "Your loan has $824.74 overdue over 2 instalments; the oldest was due on October 1, 2026."
    link = messages[2].split("here: ")[1].split(" ")[0]
    token = link.rsplit("/", 1)[1]
    assert read_token(token, services.settings.hmac_secret) == "US001"


async def test_promise_with_a_chinese_date_is_stored_and_confirmed(services: Services) -> None:
    tracker = make_tracker(services, "CN001", "我12月5号一定还", "promise_to_pay", verified=True)
    events, messages = await run(ActionPromiseToPay(), tracker)
    assert events == [SlotSet("awaiting", None), SlotSet("last_record", "promise")]
    assert messages == ["谢谢。已记录您承诺于2026年12月5日前还款¥3,500.00。"]
    promise = await services.records.get_promise("CN001")
    assert promise is not None and promise["date"] == "2026-12-05" and promise["amount"] == "3500.00"


@pytest.mark.parametrize("text", ["i'll pay on the 20th of january", "I paid nothing, will pay nov 1 2026"])
async def test_promise_outside_the_window_is_refused_with_the_range(services: Services, text: str) -> None:
    tracker = make_tracker(services, "US001", text, "promise_to_pay", verified=True)
    events, messages = await run(ActionPromiseToPay(), tracker)
    assert events == [SlotSet("awaiting", "promise_date")]
    assert messages == ["Sorry, we can only note a date from November 29, 2026 to December 13, 2026. "
                        "Which day in that range suits you?"]
    assert await services.records.get_promise("US001") is None


async def test_promise_without_a_date_asks_for_one_then_takes_the_answer(services: Services) -> None:
    events, messages = await run(ActionPromiseToPay(), make_tracker(
        services, "US001", "i will pay soon i promise", "promise_to_pay", verified=True))
    assert events == [SlotSet("awaiting", "promise_date")]
    assert messages == ["Which date can you pay by? Any day from November 29, 2026 to December 13, 2026."]
    events, messages = await run(ActionVerify(), make_tracker(
        services, "US001", "friday", "inform", verified=True, awaiting="promise_date"))
    assert events == [SlotSet("awaiting", None), SlotSet("last_record", "promise")]
    assert messages == ["Thank you. We've noted that you will pay $824.74 by December 4, 2026."]


async def test_impossible_date_is_explained(services: Services) -> None:
    events, messages = await run(ActionPromiseToPay(), make_tracker(
        services, "CN001", "2月30号还", "promise_to_pay", verified=True))
    assert events == [SlotSet("awaiting", "promise_date")]
    assert messages == ["这个日期不存在，请重新发送。"]


async def test_already_paid_is_a_claim_that_holds_reminders(services: Services) -> None:
    events, messages = await run(ActionAlreadyPaid(), make_tracker(
        services, "CN001", "我已经还了", "already_paid", verified=True))
    assert events == []
    assert messages == ["感谢告知。工作人员会核对这笔还款，核对前我们不会再发送提醒。"]
    assert await services.redis.exists(keys.paid_claim("CN001"))
    assert await services.redis.hexists(keys.hold("CN001"), "already_paid")
    assert await services.redis.zscore(keys.HANDOFF_QUEUE, _sender(services, "CN001")) is not None


async def test_dispute_needs_verification_then_queues_and_holds(services: Services) -> None:
    events, messages = await run(ActionHandOff(), make_tracker(services, "US001", "this is not my debt",
                                                               "dispute_debt"))
    assert events == [SlotSet("awaiting", "verification"), SlotSet("pending", "dispute_debt")]
    assert_discloses_nothing(messages)
    events, messages = await run(ActionHandOff(), make_tracker(services, "US001", "this is not my debt",
                                                               "dispute_debt", verified=True))
    assert events == [SlotSet("awaiting", None)]
    assert messages[0].startswith("We've recorded that you dispute this debt")
    assert await services.redis.hexists(keys.hold("US001"), "dispute")


async def test_request_human_needs_no_verification_and_says_when(services: Services) -> None:
    events, messages = await run(ActionHandOff(), make_tracker(services, "CN001", "转人工", "request_human"))
    assert events == [SlotSet("awaiting", None)]
    assert messages == ["好的，为您转接人工客服。", "工作人员将在工作时间（周一至周五 09:00-18:00）在此回复您。"]


@pytest.mark.parametrize(("action", "intent", "pending"), [
    (ActionHardship, "request_plan", "hardship:plan:job_loss::"),
    (ActionHardship, "inform_hardship", "hardship:plan:job_loss::"),
    (ActionHardship, "request_extension", "hardship:grace:job_loss::"),
    (ActionVisit, "book_visit", "book_visit"), (ActionVisit, "ask_visit_purpose", "ask_visit_purpose")])
async def test_plans_and_visits_start_with_verification(services: Services, action: Any, intent: str,
                                                        pending: str) -> None:
    events, messages = await run(action(), make_tracker(services, "CN001", "我失业了 没钱还", intent))
    assert events == [SlotSet("awaiting", "verification"), SlotSet("pending", pending)]
    assert_discloses_nothing(messages)


async def test_wrong_number_flags_and_stops_contact_without_a_word_about_the_debt(services: Services) -> None:
    events, messages = await run(ActionWrongNumber(), make_tracker(services, "CN001", "你打错了", "wrong_number"))
    assert events == [SlotSet("verified_account", None), SlotSet("awaiting", None)]
    assert messages == ["抱歉打扰了。已记录，我们将不再给这个号码发消息。"]
    sender = _sender(services, "CN001")
    assert await services.redis.zscore(keys.REVIEW_NUMBERS, sender) is not None
    assert await services.records.is_opted_out(sender)


async def test_third_party_is_flagged_and_hears_only_the_bank_number(services: Services) -> None:
    events, messages = await run(ActionThirdParty(), make_tracker(services, "US001", "im his wife", "third_party"))
    assert events == [SlotSet("verified_account", None), SlotSet("awaiting", None), SlotSet("pending", None)]
    assert await services.records.disclosure_blocked(_sender(services, "US001"))
    assert_discloses_nothing(messages)
    assert "95588" in messages[0]


async def test_stop_contact_records_an_opt_out(services: Services) -> None:
    await run(ActionStopContact(), make_tracker(services, "US001", "stop calling me", "stop_contact"))
    assert await services.records.is_opted_out(_sender(services, "US001"))


async def test_second_fallback_in_a_row_goes_to_an_agent(services: Services) -> None:
    _, first = await run(ActionFallback(), make_tracker(services, "US001", "blorp", "nlu_fallback"))
    assert first[0].startswith("Sorry, I didn't understand.")
    _, second = await run(ActionFallback(), make_tracker(services, "US001", "zzz", "nlu_fallback", "nlu_fallback"))
    assert second[0] == "Sorry I couldn't help. I'll ask a colleague to look at your messages."
    item = await services.redis.hgetall(keys.handoff(_sender(services, "US001")))
    assert item[b"reason"] == b"fallback"


async def test_switching_language_answers_in_the_new_language(services: Services) -> None:
    events, messages = await run(ActionSwitchLanguage(), make_tracker(services, "CN001", "can you speak english",
                                                                      "switch_language"))
    assert events == [SlotSet("language", "en")]
    assert messages == ["OK, I'll write in English from now on."]


@pytest.mark.parametrize(("text", "current", "wanted"), [
    ("说中文", "en", "zh"), ("English please", "zh", "en"), ("换一种语言", "zh", "en"), ("other language", "en", "zh"),
])
def test_wanted_language(text: str, current: str, wanted: str) -> None:
    assert wanted_language(text, current) == wanted


async def test_greeting_an_unverified_borrower_asks_who_they_are(services: Services) -> None:
    events, messages = await run(ActionGreet(), make_tracker(services, "US001", "hi", "greet"))
    assert events == [SlotSet("awaiting", "verification"), SlotSet("pending", "greet")]
    assert messages == ["To protect your privacy, please reply with your date of birth or the last 4 digits "
                        "of your ID card."]


async def test_pay_now_before_verification_sends_no_link(services: Services) -> None:
    _, messages = await run(ActionPayNow(), make_tracker(services, "US001", "send me the link", "pay_now"))
    assert not any("http" in m for m in messages)
    assert_discloses_nothing(messages)


async def test_a_message_listing_many_guesses_fails_and_discloses_nothing(services: Services) -> None:
    guesses = " ".join(f"{n:04d}" for n in range(4400, 4424))  # the right one, 4421, among them
    events, messages = await run(ActionVerify(), make_tracker(services, "US001", guesses, "inform",
                                                              awaiting="verification"))
    assert events == []
    assert_discloses_nothing(messages)
    assert await services.records.verification_failures("US001") == 1


async def test_verification_belongs_to_one_account(services: Services) -> None:
    tracker = make_tracker(services, "US001", "how much do i owe", "ask_balance", verified_account="CN001")
    events, messages = await run(ActionBalance(), tracker)
    assert events == [SlotSet("awaiting", "verification"), SlotSet("pending", "ask_balance")]
    assert_discloses_nothing(messages)


async def test_a_no_while_we_wait_for_a_date_is_not_a_promise(services: Services) -> None:
    tracker = make_tracker(services, "US001", "no i cant pay tomorrow", "deny", verified=True,
                           awaiting="promise_date")
    events, _ = await run(ActionDeny(), tracker)
    assert events == [SlotSet("awaiting", None)]
    assert await services.records.get_promise("US001") is None


async def test_the_chosen_language_outlives_the_session(services: Services) -> None:
    await run(ActionSwitchLanguage(), make_tracker(services, "CN001", "english please", "switch_language"))
    tracker = make_tracker(services, "CN001", "hi", "greet", language=None)
    events, messages = await run(ActionSessionStart(), tracker)
    assert SlotSet("language", "en") in events
    assert messages == ["Hello, this is Example Bank's automated assistant."]


async def test_what_a_turn_needs_from_the_records_is_read_in_one_round_trip(services: Services) -> None:
    conversation = _sender(services, "US001")

    async def for_turn(conversation_id: str) -> tuple[str | None, str | None, int, bool] | None:
        found = await services.records.for_turn(conversation_id)
        account = services.ledger.account_from(found[0]) if found else None
        return (account.account_id if account else None, *found[1:]) if found else None

    assert await for_turn(conversation) == ("US001", None, 0, False)
    await services.records.set_language(conversation, "zh")
    await services.records.verification_failed("US001")
    await services.records.verification_failed("US001")
    await services.records.block_disclosure(conversation, "third party")
    assert await for_turn(conversation) == ("US001", "zh", 2, True)
    assert await for_turn(_sender(services, "CN001")) == ("CN001", None, 0, False)
    assert await for_turn("c_" + "0" * 32) is None  # a number with no account


async def test_concurrent_fallbacks_are_counted_per_conversation(services: Services) -> None:
    second = make_tracker(services, "US001", "zzz", "nlu_fallback", "nlu_fallback")
    first = make_tracker(services, "CN001", "zzz", "nlu_fallback")
    action = ActionFallback()
    await asyncio.gather(run(action, second), run(action, first))
    assert await services.redis.zscore(keys.HANDOFF_QUEUE, _sender(services, "US001")) is not None
    assert await services.redis.zscore(keys.HANDOFF_QUEUE, _sender(services, "CN001")) is None


async def test_a_verified_borrower_sending_only_a_date_is_asked_what_it_is_for(services: Services) -> None:
    events, messages = await run(ActionVerify(), make_tracker(services, "US001", "maybe by the 10th", "inform",
                                                              verified=True))
    assert events == [SlotSet("awaiting", "date_meaning"), SlotSet("pending", "2026-12-10")]
    assert messages == ['Is December 10, 2026 the day you will pay, or a time for the verification visit? '
                        'Please reply "pay" or "visit".']
    assert await services.records.get_promise("US001") is None


async def test_a_verified_borrower_sending_months_is_not_a_promise(services: Services) -> None:
    events, messages = await run(ActionVerify(), make_tracker(services, "US001", "6 months", "inform",
                                                              verified=True))
    assert events == []
    assert messages[0].startswith("How can I help?")
    assert await services.records.get_promise("US001") is None


async def test_naming_a_coming_day_while_asking_for_the_link_is_a_promise(services: Services) -> None:
    events, messages = await run(ActionPayNow(), make_tracker(services, "US001", "can pay friday", "pay_now",
                                                              verified=True))
    assert events == [SlotSet("awaiting", None), SlotSet("last_record", "promise")]
    assert messages == ["Thank you. We've noted that you will pay $824.74 by December 4, 2026."]


async def test_paying_now_gets_the_link_not_a_promise_for_today(services: Services) -> None:
    _, messages = await run(ActionPayNow(), make_tracker(services, "US001", "send the link i want to pay now today",
                                                         "pay_now", verified=True))
    assert messages[0].startswith("You can pay $824.74 securely here: https://pay.example-bank.test/p/")
    assert await services.records.get_promise("US001") is None


async def test_asking_for_more_time_until_a_day_asks_why_before_any_offer(services: Services) -> None:
    events, messages = await run(ActionHardship(), make_tracker(
        services, "CN001", "能不能宽限到12月10号", "request_extension", verified=True))
    assert events == [SlotSet("awaiting", "hardship_reason"), SlotSet("pending", "hardship:grace:::2026-12-10")]
    assert await services.records.get_promise("CN001") is None


async def test_goodbye_on_a_call_hangs_up_and_by_sms_just_says_it(services: Services) -> None:
    _, said, payloads = await run_with_payloads(ActionGoodbye(), make_tracker(services, "CN001", "再见", "goodbye",
                                                                               channel="voice"))
    assert (said, payloads) == (["感谢您的回复，再见。"], [{"call": "hangup"}])
    _, said, payloads = await run_with_payloads(ActionGoodbye(), make_tracker(services, "CN001", "再见", "goodbye"))
    assert (said, payloads) == (["感谢您的回复，再见。"], [])


async def test_on_a_call_the_link_is_texted_and_the_amount_is_spoken(services: Services) -> None:
    _, said, payloads = await run_with_payloads(ActionPayNow(), make_tracker(
        services, "US001", "pay", "pay_now", verified=True, channel="voice"))
    assert said == ["I've sent a secure link to pay 824.74 US dollars to your phone by text message. "
                    "It is valid for 72 hours."]
    [payload] = payloads
    assert payload["sms"].startswith("You can pay $824.74 securely here: https://pay.example-bank.test/p/")


async def test_on_a_call_asking_for_a_person_asks_the_gateway_to_transfer(services: Services) -> None:
    _, said, payloads = await run_with_payloads(ActionHandOff(), make_tracker(
        services, "US001", "agent", "request_human", channel="voice"))
    assert said[-1] == "A colleague will call you back during working hours, 09:00-18:00, Monday to Friday."
    assert payloads == [{"call": "transfer"}]


@pytest.mark.parametrize(("action", "expected"), [(ActionThank(), "You're welcome."),
                                                  (ActionBotChallenge(), "I'm Example Bank's automated assistant, "
                                                   "not a person. Reply AGENT any time to reach a colleague."),
                                                  (ActionOutOfScope(), "Sorry, I can only help with your loan "
                                                   "repayments. For anything else please call 95588.")])
async def test_words_only_actions(services: Services, action: Any, expected: str) -> None:
    assert (await run(action, make_tracker(services, "US001", "…", "thank")))[1] == [expected]


async def test_talk_to_my_lawyer_is_recorded_as_contact_only_through_a_representative(services: Services) -> None:
    await run(ActionStopContact(), make_tracker(services, "US001", "stop calling me, talk to my lawyer",
                                                "stop_contact"))
    record = await services.redis.hgetall(keys.opt_out(_sender(services, "US001")))
    assert record[b"source"] == b"representative"
