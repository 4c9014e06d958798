"""Plans, grace periods, visit booking and family-contact consent, turn by turn.

Each test is a whole conversation through the real actions on the real Redis with
the sample ledger (CN001: consumer loan, ¥3,500.00 overdue, 75 days past due;
US001: auto loan, $824.74 overdue, 59 days), the slots carried from turn to turn
as Rasa would carry them. Today is Sunday 29 November 2026.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rasa_sdk import Tracker

from actions.arrangements import ActionHardship, ActionVisit, ActionWithdrawConsent
from actions.balance import ActionBalance
from actions.handoff import ActionAffirm, ActionDeny, ActionHandOff
from actions.payment import ActionAlreadyPaid, ActionPayNow, ActionPromiseToPay
from actions.smalltalk import ActionBotChallenge, ActionThank
from actions.verification import ActionVerify
from bot.core import keys
from bot.core.crypto import pseudonym
from bot.dialogue import conversation
from bot.domain.arrangements import promise_status
from bot.domain.visit_times import Preference
from bot.services import Services
from tests.test_actions import PHONES, TODAY, run, run_with_payloads

NOW = datetime(2026, 11, 29, 2, 0, tzinfo=ZoneInfo("UTC"))  # 10:00 in Shanghai, 18:00 the day before in California
ACTIONS = {
    "request_plan": ActionHardship, "request_extension": ActionHardship, "inform_hardship": ActionHardship,
    "book_visit": ActionVisit, "reschedule_visit": ActionVisit, "cancel_visit": ActionVisit,
    "ask_visit_purpose": ActionVisit, "withdraw_consent": ActionWithdrawConsent,
    "affirm": ActionAffirm, "deny": ActionDeny, "inform": ActionVerify, "nlu_fallback": ActionVerify,
    "request_human": ActionHandOff, "ask_balance": ActionBalance, "promise_to_pay": ActionPromiseToPay,
    "thank": ActionThank, "dispute_debt": ActionHandOff, "pay_now": ActionPayNow, "already_paid": ActionAlreadyPaid,
    "complain": ActionHandOff, "bot_challenge": ActionBotChallenge,
}


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conversation, "local_today", lambda account: TODAY)
    monkeypatch.setattr(conversation, "utc_now", lambda: NOW)


class Chat:
    """One borrower's conversation: each message runs the action its intent's rule names."""

    def __init__(self, svc: Services, account_id: str, verified: bool = True, channel: str = "sms") -> None:
        self.svc, self.account_id, self.channel = svc, account_id, channel
        self.sender = pseudonym(PHONES[account_id], svc.settings.hmac_secret)
        self.slots: dict[str, Any] = {"language": "zh" if account_id.startswith("CN") else "en",
                                      "verified_account": account_id if verified else None,
                                      "awaiting": None, "pending": None}
        self.events: list[dict[str, Any]] = []

    async def say(self, text: str, intent: str, confidence: float = 0.9,
                  ranking: tuple[tuple[str, float], ...] = ()) -> str:
        """Send a message; the bot's replies joined as the borrower would read them.

        Args:
            ranking: the classifier's other likely intents, as (name, confidence), best first.
        """
        self.events.append({"event": "user", "text": text, "parse_data": {"intent": {"name": intent}}})
        ranked = [{"name": name, "confidence": c} for name, c in ((intent, confidence), *ranking)]
        tracker = Tracker(sender_id=self.sender, slots=dict(self.slots),
                          latest_message={"text": text, "intent": {"name": intent, "confidence": confidence},
                                          "intent_ranking": ranked, "entities": [],
                                          "metadata": {"channel": self.channel}},
                          events=list(self.events), paused=False, followup_action=None, active_loop={},
                          latest_action_name="action_listen")
        events, texts = await run(ACTIONS[intent](), tracker)
        for event in events:
            if event["event"] == "slot":
                self.slots[event["name"]] = event["value"]
        return "\n".join(texts)

    @property
    def awaiting(self) -> str | None:
        return self.slots["awaiting"]


async def _accept_first_plan(chat: Chat) -> str:
    """CN001 says why, picks the first plan and says yes; the last reply asks about a family contact."""
    await chat.say("失业了", "inform_hardship")
    await chat.say("1", "inform")
    return await chat.say("是", "affirm")


# --- plans ------------------------------------------------------------------------------------


async def test_zh_plan_reason_offers_choice_confirmation_and_schedule(services: Services) -> None:
    chat = Chat(services, "CN001")
    reply = await chat.say("我失业了，一下子还不上", "inform_hardship")
    assert "谢谢您告诉我们" in reply and "可选的分期方案" in reply and "¥3,500.00" in reply
    assert "2）分6期，每期¥630.00（首期¥630.00，2026年12月6日还），共¥3,780.00，含手续费及利息¥280.00。" in reply
    assert (await services.arrangements.reason("CN001"))["reason"] == "job_loss"
    assert chat.awaiting == "plan_choice"

    reply = await chat.say("我选第二个", "inform")
    assert "共6期" in reply and "差额计入末期" in reply and chat.awaiting == "plan_confirm"
    assert await services.arrangements.current("CN001") is None  # nothing stored before the yes

    reply = await chat.say("确认", "affirm")
    assert "分期方案已生效：共6期，合计¥3,780.00" in reply
    for line in ("1. 2026年12月6日 ¥630.00", "6. 2027年5月6日 ¥630.00"):
        assert line in reply
    stored = await services.arrangements.current("CN001")
    assert stored["offer"]["count"] == 6 and stored["paid_before"] == "1500.00"
    assert "联系不上您时" in reply and chat.awaiting == "family_consent"


async def test_en_reason_asked_first_and_the_stated_monthly_amount_is_kept(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("I can do $250 a month", "request_plan")
    assert "what has made it hard to pay" in reply and chat.awaiting == "hardship_reason"

    reply = await chat.say("2", "inform")
    assert (await services.arrangements.reason("US001"))["reason"] == "illness"
    # Auto policy: first payment at least $200, so 3 x $284.26 does not fit, 6 months does.
    assert "Within $250.00 a month, this is the shortest plan" in reply
    assert "6 payments: $200.00 on December 6, 2026" in reply and chat.awaiting == "plan_confirm"


async def test_an_amount_below_every_plan_is_answered_honestly_with_a_person(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("lost my job last month", "inform_hardship")
    reply = await chat.say("honestly i can only do like 150 bucks a month", "request_plan")
    assert "None of the plans we can offer comes to $150.00 a month or less: the lowest monthly payment is $200.00" \
        in reply
    assert chat.awaiting == "handoff_offer"
    reply = await chat.say("yes please", "affirm")
    assert "colleague" in reply
    item = await services.redis.hgetall(keys.handoff(chat.sender))
    assert item[b"reason"] == b"request_plan"
    assert await services.arrangements.current("US001") is None


async def test_changing_ones_mind_at_the_confirmation(services: Services) -> None:
    chat = Chat(services, "CN001")
    await chat.say("生意亏了", "inform_hardship")
    await chat.say("3", "inform")
    reply = await chat.say("不要这个", "deny")
    assert "可选的分期方案" in reply and chat.awaiting == "plan_choice"  # back to the list
    reply = await chat.say("其实我每月最多还800", "request_plan")
    assert "在每月¥800.00以内，最短的分期方案" in reply and "共6期" in reply
    reply = await chat.say("不行", "deny")
    assert "可选的分期方案" in reply and chat.awaiting == "plan_choice"
    reply = await chat.say("算了，我再想想", "deny")
    assert "没有做任何变更" in reply and chat.awaiting is None
    assert await services.arrangements.current("CN001") is None


async def test_an_unclear_choice_is_asked_again(services: Services) -> None:
    chat = Chat(services, "CN001")
    await chat.say("家里出事了", "inform_hardship")
    reply = await chat.say("嗯嗯", "inform")
    assert "请回复方案编号" in reply and chat.awaiting == "plan_choice"
    reply = await chat.say("option 9", "inform")
    assert "请回复方案编号" in reply


async def test_plan_request_before_verification_asks_who_first_then_why(services: Services) -> None:
    chat = Chat(services, "CN001", verified=False)
    reply = await chat.say("能分期吗", "request_plan")
    assert "¥" not in reply and chat.awaiting == "verification"
    reply = await chat.say("1985年3月12日", "inform")
    assert "还款困难的原因" in reply and chat.awaiting == "hardship_reason"


async def test_a_second_plan_while_one_is_kept_is_refused_with_the_next_due(services: Services) -> None:
    chat = Chat(services, "CN001")
    await _accept_first_plan(chat)
    reply = await Chat(services, "CN001").say("还能再分期吗", "request_plan")
    assert "您已有一个还款安排：下一期¥1,225.00，应在2026年12月6日前还款。" in reply


# --- grace periods ----------------------------------------------------------------------------


async def test_en_grace_beyond_the_policy_is_refused_then_the_maximum_is_accepted(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("can i get more time", "request_extension")
    reply = await chat.say("I was in hospital", "inform_hardship")
    # 59 days past due: the auto policy's 31-60 bucket allows 7 days.
    assert "We can give you 7 days: pay $824.74 by December 6, 2026." in reply
    reply = await chat.say("could I have until december 20", "inform")
    assert "until December 6, 2026 at the latest" in reply and chat.awaiting == "grace_confirm"
    reply = await chat.say("december 3 then", "inform")
    assert "We can give you 4 days: pay $824.74 by December 3, 2026" in reply
    reply = await chat.say("yes", "affirm")
    assert "please pay $824.74 by December 3, 2026" in reply
    account = await services.ledger.get("US001")
    stops = await services.policy.hard_stops(account, "sms", TODAY)
    assert "grace arrangement in good standing" in stops


async def test_zh_grace_impossible_date(services: Services) -> None:
    chat = Chat(services, "CN001")
    await chat.say("被裁员了，能宽限几天吗", "request_extension")
    reply = await chat.say("2月30号", "inform")
    assert "日期" in reply and chat.awaiting == "grace_confirm"


async def test_broken_plan_returns_the_account_to_reminders(services: Services) -> None:
    chat = Chat(services, "CN001")
    await _accept_first_plan(chat)
    account = await services.ledger.get("CN001")
    assert "plan arrangement in good standing" in await services.policy.hard_stops(account, "sms", TODAY)
    later = date(2026, 12, 7)  # the first instalment fell due yesterday and nothing was paid
    assert not [s for s in await services.policy.hard_stops(account, "sms", later) if "arrangement" in s]


# --- family contact consent -------------------------------------------------------------------


async def test_consent_then_contact_then_withdrawal(services: Services) -> None:
    chat = Chat(services, "CN001")
    await _accept_first_plan(chat)
    reply = await chat.say("我妈 王秀英 13800001111", "inform")
    assert "同意请回复" in reply and chat.awaiting == "family_consent"  # no yes yet: asked again
    assert await services.consents.family_contact("CN001") is None
    reply = await chat.say("同意", "affirm")
    record = await services.consents.get("CN001", "family_contact")
    assert record["status"] == "granted" and record["channel"] == "sms"
    assert record["wording"].startswith("还有一个问题") and record["wording_version"].startswith(
        "utter_ask_family_consent#")
    reply = await chat.say("我妈 王秀英 13800001111", "inform")
    assert "*******1111" in reply
    contact = await services.consents.family_contact("CN001")
    assert contact is not None and contact.phone == "+8613800001111" and "王秀英" in contact.description

    reply = await Chat(services, "CN001", verified=False).say("撤回授权", "withdraw_consent")
    assert "已撤回您的授权" in reply
    assert await services.consents.family_contact("CN001") is None
    assert (await services.consents.get("CN001", "family_contact"))["status"] == "withdrawn"


@pytest.mark.parametrize(("account", "text", "stops"), [
    ("CN001", "我撤回同意，不要再联系我", True),
    ("US001", "I withdraw my consent, stop contacting me", True),
    ("CN001", "撤回授权", False),
])
async def test_a_withdrawal_that_also_says_do_not_contact_me_is_an_opt_out(services: Services, account: str,
                                                                          text: str, stops: bool) -> None:
    reply = await Chat(services, account, verified=False).say(text, "withdraw_consent")
    found = await services.ledger.get(account)
    assert found is not None
    opted_out = await services.records.is_opted_out(pseudonym(found.phone, services.settings.hmac_secret))
    assert opted_out is stops
    assert (("不会再通过短信或电话联系您" in reply) or ("won't contact you" in reply)) is stops


async def test_a_consent_that_reads_like_a_withdrawal_is_asked_again(services: Services) -> None:
    chat = Chat(services, "CN001")
    await _accept_first_plan(chat)
    reply = await chat.say("我同意你们保存我妈的电话", "withdraw_consent")
    assert "同意请回复" in reply and chat.awaiting == "family_consent"
    assert await services.consents.get("CN001", "family_contact") is None


async def test_no_consent_stores_nothing_and_is_not_asked_again(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("lost my job", "inform_hardship")
    await chat.say("2", "inform")
    reply = await chat.say("yes", "affirm")
    assert "may we contact one family member" in reply
    reply = await chat.say("no thanks", "deny")
    assert "won't ask for or keep any family contact" in reply
    assert (await services.consents.get("US001", "family_contact"))["status"] == "declined"
    assert await services.redis.exists(keys.family_contact("US001")) == 0


# --- visits -----------------------------------------------------------------------------------


async def _book_zh(chat: Chat, when: str = "周六上午") -> str:
    reply = await chat.say("我想预约上门核实", "book_visit")
    assert "身份证、借款合同和收入证明" in reply and chat.awaiting == "visit_place"
    reply = await chat.say("来我家吧", "inform")
    assert "家庭住址" in reply and chat.awaiting == "visit_address_consent"
    reply = await chat.say("同意", "affirm")
    assert "世纪大道100号" in reply and chat.awaiting == "visit_address"
    reply = await chat.say("对", "affirm")
    assert chat.awaiting == "visit_time"
    reply = await chat.say(when, "inform")
    assert chat.awaiting == "visit_slot"
    return reply


async def test_zh_booking_reschedule_and_cancel(services: Services) -> None:
    chat = Chat(services, "CN001")
    reply = await _book_zh(chat)
    assert "1）2026年12月5日 09:00" in reply
    reply = await chat.say("第一个", "inform")
    assert "已预约：2026年12月5日 09:00" in reply and "上海市浦东新区世纪大道100号" in reply
    booking = await services.bookings.booking_for("CN001")
    assert booking is not None and len(booking.staff) >= 2
    for staff in booking.staff:
        assert staff.name in reply and staff.staff_id in reply
    consent = await services.consents.get("CN001", "visit_address")
    assert consent["status"] == "granted"

    reply = await chat.say("能改到下周二下午吗", "reschedule_visit")
    assert "您已预约2026年12月5日 09:00的走访" in reply and chat.awaiting == "visit_slot"
    assert "1）2026年12月1日 12:00" in reply  # on a Sunday, 下周二 is the day after tomorrow
    reply = await chat.say("1", "inform")
    assert "已预约：2026年12月1日 12:00" in reply
    moved = await services.bookings.booking_for("CN001")
    assert moved is not None and moved.slot.start.date() == date(2026, 12, 1)
    old = await services.bookings.offer("someone-else", "SH", Preference(day=date(2026, 12, 5)), NOW, limit=1)
    assert old and old[0].start == booking.slot.start  # the old slot is free again

    reply = await chat.say("不用来了", "cancel_visit")
    assert "已取消2026年12月1日" in reply
    assert await services.bookings.booking_for("CN001") is None


async def test_a_slot_someone_else_just_took_is_explained_and_others_offered(services: Services) -> None:
    chat = Chat(services, "CN001")
    reply = await _book_zh(chat, "周六上午")
    draft_slots = await services.bookings.offer("rival", "SH", Preference(day=date(2026, 12, 5)), NOW, limit=1)
    # The rival cannot take CN001's held slot while the hold lasts: they get the other team or a later one.
    await services.bookings.release_holds(chat.sender)  # CN001's hold ran out
    for _ in range(2):  # both teams' 9:00 capacity goes to others
        taken = await services.bookings.offer(f"rival-{_}", "SH", Preference(day=date(2026, 12, 5)), NOW, limit=1)
        assert await services.bookings.book(f"rival-{_}", f"R{_}", taken[0], {}, now=NOW) is not None
    assert draft_slots
    reply = await chat.say("1", "inform")
    assert "刚刚被别人预约了" in reply and chat.awaiting == "visit_slot"
    assert "2026年12月5日 09:00" not in reply.split("刚刚被别人预约了")[1]


async def test_address_consent_refused_stores_nothing(services: Services) -> None:
    chat = Chat(services, "CN001")
    await chat.say("上门核实怎么约", "book_visit")
    await chat.say("单位", "inform")
    reply = await chat.say("不同意", "deny")
    assert "没有地址无法预约走访" in reply and chat.awaiting == "handoff_offer"
    assert (await services.consents.get("CN001", "visit_address"))["status"] == "declined"
    assert await services.bookings.booking_for("CN001") is None


async def test_visit_purpose_is_explained_and_leads_to_booking(services: Services) -> None:
    chat = Chat(services, "CN001")
    reply = await chat.say("上门是干什么的", "ask_visit_purpose")
    assert "两名我行工作人员" in reply and chat.awaiting == "visit_place"


async def test_en_visit_time_in_free_text_uses_the_borrowers_zone(services: Services) -> None:
    chat = Chat(services, "US001")  # region CA, Pacific time
    await chat.say("can someone come by to verify", "book_visit")
    await chat.say("at my office", "inform")
    await chat.say("ok", "affirm")
    reply = await chat.say("Acme Logistics, 500 Howard St, San Francisco", "inform")
    assert chat.awaiting == "visit_time"
    reply = await chat.say("next Tuesday after 2pm", "inform")
    assert "1) December 1, 2026, 3:00 PM" in reply  # the first slot after 2pm, Pacific time
    reply = await chat.say("the second one", "inform")
    assert "Booked:" in reply and "500 Howard St" in reply


async def test_the_reason_and_amount_in_the_request_count_after_verification(services: Services) -> None:
    chat = Chat(services, "US001", verified=False)
    await chat.say("i got laid off, can i do $250 a month?", "request_plan")
    reply = await chat.say("4421", "inform")
    assert "Within $250.00 a month, this is the shortest plan" in reply and chat.awaiting == "plan_confirm"
    assert (await services.arrangements.reason("US001"))["reason"] == "job_loss"


# --- on a call ----------------------------------------------------------------------------------


async def test_on_a_call_the_schedule_is_texted_not_read_out(services: Services) -> None:
    chat = Chat(services, "CN001", channel="voice")
    await chat.say("我失业了", "inform_hardship")
    await chat.say("第一个", "inform")
    texts = await _texts_of_last_turn(services, chat, "是的", "affirm")
    assert len(texts) == 1 and texts[0].startswith("1. 2026年12月6日 ¥1,225.00\n2. ")
    assert texts[0].endswith("3. 2027年2月6日 ¥1,225.00")


async def _texts_of_last_turn(services: Services, chat: Chat, text: str, intent: str) -> list[str]:
    """What a voice turn asks the gateway to text; the spoken reply is checked elsewhere."""
    tracker = Tracker(sender_id=chat.sender, slots=dict(chat.slots),
                      latest_message={"text": text, "intent": {"name": intent}, "entities": [],
                                      "metadata": {"channel": chat.channel}},
                      events=list(chat.events), paused=False, followup_action=None, active_loop={},
                      latest_action_name="action_listen")
    _, _, payloads = await run_with_payloads(ACTIONS[intent](), tracker)
    return [p["sms"] for p in payloads if "sms" in p]


async def test_on_a_call_the_booking_and_the_visitors_are_texted(services: Services) -> None:
    chat = Chat(services, "CN001", channel="voice")
    await chat.say("我要预约上门", "book_visit")
    await chat.say("在家", "inform")
    await chat.say("同意", "affirm")
    await chat.say("对", "affirm")
    await chat.say("周六上午", "inform")
    texts = await _texts_of_last_turn(services, chat, "第一个", "inform")
    booking = await services.bookings.booking_for("CN001")
    assert booking is not None and len(texts) == 1
    assert texts[0].startswith("已预约：2026年12月5日 09:00")
    for staff in booking.staff:
        assert f"{staff.name} {staff.staff_id}" in texts[0]


# --- what the contact policy makes of them -------------------------------------------------------


async def test_a_booked_visit_holds_reminders_back_but_not_its_own_reminder(services: Services) -> None:
    chat = Chat(services, "CN001")
    await _book_zh(chat)
    await chat.say("1", "inform")
    account = await services.ledger.get("CN001")
    assert "verification visit booked for 2026-12-05" in await services.policy.hard_stops(account, "sms", TODAY)
    assert not await services.policy.hard_stops(account, "sms", TODAY, purpose="visit_reminder")
    assert not await services.policy.hard_stops(account, "sms", date(2026, 12, 6))


async def test_the_ledger_view_shows_plan_booking_and_consents_without_personal_data(services: Services) -> None:
    from bot.console.account_view import account_summary

    chat = Chat(services, "CN001")
    await _accept_first_plan(chat)
    await chat.say("好的", "affirm")
    await chat.say("老婆 李梅 13912345678", "inform")
    await _book_zh(Chat(services, "CN001"))
    summary = await account_summary(services, "CN001", TODAY)
    assert summary is not None
    assert summary["overdue"] == {"amount": "3500.00", "instalments": 3, "oldest_due": "2026-09-15",
                                  "days_past_due": 75, "bucket": "61-90"}
    assert summary["arrangement"]["kind"] == "plan" and summary["arrangement"]["status"] == "active"
    assert summary["hardship_reason"] == "job_loss"
    assert summary["consents"]["family_contact"]["status"] == "granted"
    assert summary["family_contact"] == "**********5678"
    flat = str(summary)
    for private in ("张伟", "13800138000", "13912345678", "世纪大道", "李梅"):
        assert private not in flat


# --- replies that are not what they first look like -----------------------------------------------


async def test_an_ok_turns_after_the_question_accepts_nothing(services: Services) -> None:
    chat = Chat(services, "CN001")
    await chat.say("失业了", "inform_hardship")
    await chat.say("2", "inform")
    reply = await chat.say("我现在一共欠多少？", "ask_balance")
    assert "¥3,500.00" in reply and chat.awaiting is None
    await chat.say("好的", "affirm")
    assert await services.arrangements.current("CN001") is None


async def test_consent_is_not_taken_from_a_later_ok(services: Services) -> None:
    chat = Chat(services, "CN001")
    await _accept_first_plan(chat)
    assert chat.awaiting == "family_consent"
    await chat.say("谢谢", "thank")
    await chat.say("好的", "affirm")
    assert await services.consents.get("CN001", "family_contact") is None


async def test_yes_with_another_plan_named_confirms_that_plan_first(services: Services) -> None:
    chat = Chat(services, "CN001")
    await chat.say("失业了", "inform_hardship")
    await chat.say("2", "inform")
    reply = await chat.say("好的，那就12期吧", "affirm")
    assert "共12期" in reply and chat.awaiting == "plan_confirm"
    assert await services.arrangements.current("CN001") is None
    await chat.say("确认", "affirm")
    assert (await services.arrangements.current("CN001"))["offer"]["count"] == 12


async def test_the_request_survives_a_failed_verification_attempt(services: Services) -> None:
    chat = Chat(services, "US001", verified=False)
    await chat.say("i got laid off, can i do $250 a month?", "request_plan")
    assert "try again" in (await chat.say("4422", "inform")).lower() or chat.awaiting == "verification"
    reply = await chat.say("4421", "inform")
    assert "Within $250.00 a month" in reply
    assert (await services.arrangements.reason("US001"))["text"] == ""  # the request's words were not kept


async def test_a_promise_during_the_plan_choice_is_a_promise(services: Services) -> None:
    chat = Chat(services, "CN001")
    await chat.say("失业了", "inform_hardship")
    reply = await chat.say("算了，我12月4号一次性还清", "promise_to_pay")
    assert "2026年12月4日" in reply and chat.awaiting is None
    assert (await services.records.get_promise("CN001"))["date"] == "2026-12-04"


async def test_no_to_the_reason_question_leaves_the_flow(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("can i split my payments", "request_plan")
    reply = await chat.say("no thanks, forget it", "deny")
    assert "nothing has been changed" in reply and chat.awaiting is None
    assert await services.arrangements.reason("US001") is None


async def test_a_time_with_digits_is_a_new_wish_not_a_slot_number(services: Services) -> None:
    chat = Chat(services, "CN001")
    await _book_zh(chat)
    reply = await chat.say("还是周四下午3点以后吧", "inform")
    assert "2026年12月3日 15:00" in reply and chat.awaiting == "visit_slot"
    assert await services.bookings.booking_for("CN001") is None


async def test_a_question_instead_of_an_address_is_answered_and_the_address_asked_again(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("can someone come by to verify", "book_visit")
    await chat.say("at my office", "inform")
    await chat.say("ok", "affirm")
    reply = await chat.say("how much do I owe right now?", "ask_balance")
    assert "$824.74" in reply and "Please send your employer's name and address." in reply
    assert chat.awaiting == "visit_address"  # asked again, still open
    reply = await chat.say("Acme, 500 Pine St SF, my cell 415-555-9999", "complain", 0.44)
    assert "555-9999" not in reply and chat.awaiting == "visit_time"  # an address, whatever the classifier said


@pytest.mark.parametrize(("text", "reason"), [
    ("I will pay later", None), ("too many bills this month", None), ("just kidding", None), ("幸亏还有点存款", None),
    ("my mother lost her job", "job_loss"), ("I was ill", "illness"), ("my kid is sick", "illness"),
    ("the shop closed", "business"), ("家里老人去世了", "family_emergency"), ("离婚了", "other"),
])
def test_reasons_are_whole_words(text: str, reason: str | None) -> None:
    from bot.dialogue.hardship import read_reason

    assert read_reason(text) == reason


@pytest.mark.parametrize(("text", "reason"), [
    ("1", "job_loss"), ("2.", "illness"), ("3）", "business"), ("4", "family_emergency"), ("5", "other"),
    ("我生病了", "illness"), ("dunno", "other"),
])
def test_a_reason_is_answered_by_its_listed_number_or_in_words(text: str, reason: str) -> None:
    from bot.dialogue.hardship import read_reason, read_reason_answer

    assert read_reason_answer(text, read_reason(text)) == reason


@pytest.mark.parametrize(("text", "count"), [
    ("3个月", 3), ("六期", 6), ("九个月", 9), ("十二期", 12), ("十八个月", 18), ("二十四期", 24), ("12 months", 12),
    ("the three month one", 3), ("twelve-month plan please", 12), ("twenty four months", 24),
    ("两期", None), ("五六期", None),
])
def test_a_plan_is_chosen_by_its_length_in_figures_or_chinese_numerals(text: str, count: int | None) -> None:
    from bot.dialogue.hardship import read_choice
    from bot.domain.plans import Instalment, Offer

    offers = [Offer("plan", n, Decimal(n), Decimal(0), Decimal(0), (Instalment(TODAY, Decimal(1)),) * n)
              for n in (3, 6, 9, 12, 18, 24)]
    chosen = read_choice(text, offers)
    assert (chosen.count if chosen else None) == count


@pytest.mark.parametrize(("text", "source"), [
    ("stop calling me", "conversation"), ("talk to my Lawyer", "representative"), ("找我的律师", "representative"),
])
def test_an_opt_out_naming_a_representative_is_recorded_as_theirs(text: str, source: str) -> None:
    assert conversation.opt_out_source(text) == source


async def test_a_promise_holds_reminders_until_broken_and_not_once_kept(services: Services) -> None:
    account = await services.ledger.get("CN001")
    assert account is not None
    await services.records.promise("CN001", "c_x", date(2026, 12, 3), account.installments[1].amount_due,
                                   paid_before=Decimal("1500.00"))
    assert [s for s in await services.policy.hard_stops(account, "sms", TODAY) if "promise" in s]
    assert not [s for s in await services.policy.hard_stops(account, "sms", date(2026, 12, 4)) if "promise" in s]
    paid = dataclasses.replace(account, installments=tuple(
        dataclasses.replace(i, amount_paid=i.amount_due) if i.installment_no == 2 else i
        for i in account.installments))
    assert promise_status(await services.records.get_promise("CN001"), paid, TODAY) == "kept"


async def test_a_family_contacts_number_is_a_stranger_to_the_bot(services: Services) -> None:
    chat = Chat(services, "CN001")
    await _accept_first_plan(chat)
    await chat.say("好的", "affirm")
    await chat.say("我妈 王秀英 13800001111", "inform")
    relative = pseudonym("+8613800001111", services.settings.hmac_secret)
    assert await services.ledger.for_conversation(relative) is None  # they hear the unknown-sender answer


async def test_are_you_a_bot_while_choosing_a_plan_keeps_the_choice_open(services: Services) -> None:
    chat = Chat(services, "CN001")
    await chat.say("失业了", "inform_hardship")
    reply = await chat.say("你是机器人吗", "bot_challenge")
    assert "不是真人" in reply and "请回复方案编号" in reply and chat.awaiting == "plan_choice"
    reply = await chat.say("好吧 那我选第一个", "affirm")
    assert chat.awaiting == "plan_confirm"


async def test_a_later_day_asked_for_during_the_grace_offer_is_answered_as_such(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("can you give me a few more days, i was in the hospital", "request_extension")
    reply = await chat.say("could i have until December 19, 2026", "promise_to_pay", 0.42)
    assert "at the latest" in reply and await services.records.get_promise("US001") is None
