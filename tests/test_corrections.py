"""Nothing is recorded that the borrower did not mean: unclear days are asked about, corrections undo.

Conversations through the real actions on the real Redis, with the intents and confidences the trained
model gives these messages (Sunday 29 November 2026, as in test_flows).
"""

from __future__ import annotations

from bot.core import keys
from bot.services import Services
from tests.test_flows import Chat, _fixed_clock  # noqa: F401 - autouse: the clock of test_flows


async def _records(services: Services, account_id: str) -> tuple[object, bool, bool]:
    """The promise, whether a dispute holds reminders, and whether a plan stands."""
    promise = await services.records.get_promise(account_id)
    dispute = await services.redis.hexists(keys.hold(account_id), "dispute")
    plan = await services.arrangements.current(account_id) is not None
    return promise, bool(dispute), plan


async def test_the_three_messages_after_a_plan_leave_the_plan_and_a_visit_being_arranged(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("I lost my job", "inform_hardship")
    await chat.say("1", "inform")
    await chat.say("yes", "affirm")
    await chat.say("no thanks", "deny")  # the family-contact question
    reply = await chat.say("can someone visit me at home next saturday morning?", "inform", 0.53)
    assert chat.awaiting == "visit_address_consent" and "promise" not in reply.lower()  # home was said
    await chat.say("no, I did not promise that. I want a home visit", "dispute_debt", 0.42)
    await chat.say("saturday morning", "inform", 0.95)
    promise, dispute, plan = await _records(services, "US001")
    assert promise is None and not dispute and plan


async def test_a_bare_day_is_asked_about_and_the_answer_decides(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("saturday morning", "inform", 0.95)
    assert "the day you will pay, or a time for the verification visit" in reply and chat.awaiting == "date_meaning"
    assert await services.records.get_promise("US001") is None
    reply = await chat.say("pay", "pay_now")
    assert "We've noted that you will pay" in reply
    assert (await services.records.get_promise("US001"))["date"] == "2026-12-05"


async def test_a_bare_day_answered_visit_starts_the_visit_flow(services: Services) -> None:
    chat = Chat(services, "CN001")
    reply = await chat.say("下周三", "inform")
    assert "还款的日子，还是上门核实的时间" in reply
    await chat.say("上门", "book_visit")
    assert chat.awaiting == "visit_place" and await services.records.get_promise("CN001") is None


async def test_a_day_with_a_payment_word_is_a_promise(services: Services) -> None:
    chat = Chat(services, "CN001")
    reply = await chat.say("我周五还", "inform")
    assert "已记录您承诺于" in reply and chat.slots["last_record"] == "promise"


async def test_i_did_not_say_that_withdraws_the_promise_just_made_with_an_audit_event(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("I will pay on friday", "promise_to_pay")
    assert await services.records.get_promise("US001") is not None
    reply = await chat.say("no, I didn't say that", "deny")
    assert "removed that promise" in reply and await services.records.get_promise("US001") is None
    events = [fields[b"event"] for _, fields in await services.redis.xrange(keys.AUDIT_STREAM)]
    assert b"promise_withdrawn" in events


async def test_zh_correction_with_nothing_recorded_records_nothing(services: Services) -> None:
    chat = Chat(services, "CN001")
    reply = await chat.say("不是这个意思", "deny", 0.88)
    assert "没有记录任何内容" in reply
    assert await _records(services, "CN001") == (None, False, False)


async def test_an_unsure_dispute_is_asked_before_anything_is_recorded(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("this is not right", "dispute_debt", 0.45)
    assert "do you mean you do not owe this amount" in reply and chat.awaiting == "record_confirm"
    assert not (await _records(services, "US001"))[1]
    await chat.say("no", "deny")
    assert not (await _records(services, "US001"))[1]
    await chat.say("this is not my debt, I never borrowed it", "dispute_debt", 0.45)
    await chat.say("yes", "affirm")
    assert (await _records(services, "US001"))[1]


async def test_a_promise_to_pay_that_speaks_only_of_a_visit_is_asked_about(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("can you come by my office on friday", "promise_to_pay", 0.7)
    assert chat.awaiting == "date_meaning" and "visit" in reply
    assert await services.records.get_promise("US001") is None


async def test_an_unsure_already_paid_is_asked_and_a_yes_records_the_claim(services: Services) -> None:
    chat = Chat(services, "CN001")
    reply = await chat.say("上个月那笔好像弄过了吧", "already_paid", 0.4)
    assert "您是说已经还过款了吗" in reply and await services.redis.hlen(keys.paid_claim("CN001")) == 0
    reply = await chat.say("是的", "affirm")
    assert "工作人员会核对" in reply and await services.redis.hlen(keys.paid_claim("CN001")) == 1
    assert chat.awaiting is None


async def test_an_unsure_promise_that_says_pay_and_a_day_is_recorded(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("i can pay it the day after tomorrow", "promise_to_pay", 0.55)
    assert "We've noted that you will pay" in reply


async def test_an_unsure_promise_without_a_word_of_paying_is_asked_about(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("friday then", "promise_to_pay", 0.4)
    assert chat.awaiting == "date_meaning" and "the day you will pay" in reply


async def test_a_day_one_cannot_pay_on_is_not_a_promise(services: Services) -> None:
    chat = Chat(services, "CN001")
    await chat.say("周六还不了", "inform")
    await chat.say("I can't pay on friday", "inform")
    assert await services.records.get_promise("CN001") is None


async def test_actually_make_it_the_20th_moves_the_promise_just_made(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("i'll pay on the 5th", "promise_to_pay", 0.9)
    assert (await services.records.get_promise("US001"))["date"] == "2026-12-05"
    reply = await chat.say("actually make it the 10th", "inform", 0.7)
    assert "December 10, 2026" in reply
    assert (await services.records.get_promise("US001"))["date"] == "2026-12-10"
    events = [fields[b"event"] for _, fields in await services.redis.xrange(keys.AUDIT_STREAM)]
    assert events[-1] == b"promise_changed"


async def test_a_new_day_without_a_promise_made_here_is_not_a_change(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("actually make it the 10th", "inform", 0.7)
    assert "the day you will pay, or a time for the verification visit" in reply
    assert await services.records.get_promise("US001") is None


async def test_what_did_i_agree_to_tells_what_is_on_record(services: Services) -> None:
    chat = Chat(services, "US001")
    assert "Nothing is on record from you yet" in await chat.say("what did i agree to?", "ask_balance", 0.5)
    await chat.say("i'll pay on the 5th", "promise_to_pay", 0.9)
    reply = await chat.say("remind me what i promised", "promise_to_pay", 0.6)
    assert "On record: your promise to pay $824.74 by December 5, 2026." in reply
    assert (await services.records.get_promise("US001"))["date"] == "2026-12-05"


async def test_what_is_on_record_waits_for_verification(services: Services) -> None:
    chat = Chat(services, "CN001", verified=False)
    reply = await chat.say("我之前答应的是什么", "ask_balance", 0.5)
    assert "¥" not in reply and chat.awaiting == "verification" and chat.slots["pending"] == "on_record"


async def test_cannot_pay_until_a_day_asks_for_more_time_instead_of_promising(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("i can't pay until the 5th", "promise_to_pay", 0.85)
    assert "what has made it hard to pay?" in reply and chat.awaiting == "hardship_reason"
    assert await services.records.get_promise("US001") is None


async def test_you_got_it_wrong_with_nothing_recorded_is_a_dispute_not_a_correction(services: Services) -> None:
    chat = Chat(services, "CN001")
    reply = await chat.say("你们搞错了，我从来没借过这笔钱", "dispute_debt", 0.88)
    assert "异议" in reply
    assert await services.redis.hexists(keys.hold("CN001"), "dispute")


async def test_i_get_paid_friday_is_no_payment_claim(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("i get paid friday", "already_paid", 0.97)
    assert "do you mean" in reply.lower() and chat.awaiting == "record_confirm"
    assert not await services.redis.exists(keys.paid_claim("US001"))


async def test_an_unsure_claim_before_verification_is_confirmed_after_it(services: Services) -> None:
    chat = Chat(services, "CN001", verified=False)
    await chat.say("喂 我想把钱还了 怎么弄", "already_paid", 0.58)
    assert chat.slots["pending"] == "unsure:already_paid"
    reply = await chat.say("1985年3月12日", "inform", 0.99)
    assert "身份已核实" in reply and chat.awaiting == "record_confirm"
    assert not await services.redis.exists(keys.paid_claim("CN001"))


async def test_a_clear_claim_before_verification_is_recorded_after_it(services: Services) -> None:
    chat = Chat(services, "US001", verified=False)
    await chat.say("I paid on the 3rd, check it", "already_paid", 0.93)
    await chat.say("07/04/1979", "inform", 0.99)
    assert await services.redis.exists(keys.paid_claim("US001"))


async def test_a_day_given_after_a_refusal_is_the_promise_whatever_it_read_as(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("I can pay on January 30", "promise_to_pay", 0.9)
    assert chat.awaiting == "promise_date" and "we can only note a date from" in reply
    await chat.say("ok the 9th then", "thank", 0.33)
    assert (await services.records.get_promise("US001"))["date"] == "2026-12-09"


async def test_a_paid_claim_that_says_the_amount_is_wrong_is_asked_about_as_a_dispute(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("the amount is wrong, i paid 2 of them", "already_paid", 0.84)
    assert "do you mean you do not owe this amount?" in reply
    await chat.say("yes", "affirm", 0.95)
    promise, dispute, plan = await _records(services, "US001")
    assert dispute and not await services.redis.exists(keys.paid_claim("US001"))


async def test_the_day_and_time_asked_for_with_the_visit_are_offered_after_the_address(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("can someone visit me at home on tuesday morning?", "book_visit", 0.9)
    await chat.say("yes", "affirm", 0.95)  # may we record your home address?
    reply = await chat.say("12 Market St, San Francisco", "inform", 0.8)
    assert chat.awaiting == "visit_slot" and "1) December 1, 2026, 9:00 AM" in reply  # the Tuesday


async def test_fees_i_never_agreed_to_is_a_dispute_when_nothing_was_recorded(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("I don't agree with this balance. you charged me fees I never agreed to",
                           "dispute_debt", 0.95)
    assert "misunderstood" not in reply
    assert (await _records(services, "US001"))[1]


async def test_i_can_do_it_on_a_day_is_a_promise(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("okay yeah i can do it on the tenth", "inform", 0.7)
    assert (await services.records.get_promise("US001"))["date"] == "2026-12-10"


async def test_a_hardship_story_asking_for_a_few_more_days_is_offered_time(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("can i have a few extra days to pay? my hours got cut", "inform_hardship", 0.69)
    reply = await chat.say("my hours at work got cut in half", "inform_hardship", 0.99)
    assert "We can give you" in reply and chat.awaiting == "grace_confirm"


async def test_a_plan_asked_for_as_more_time_is_offered_plans(services: Services) -> None:
    chat = Chat(services, "US001")
    reply = await chat.say("can i do a payment plan? my mom passed away", "request_extension", 0.7)
    assert "plans we can offer" in reply or chat.awaiting in ("hardship_reason", "plan_choice")
    assert chat.awaiting != "grace_confirm"


async def test_a_day_to_pay_said_with_okay_yeah_is_a_promise(services: Services) -> None:
    chat = Chat(services, "US001")
    await chat.say("okay yeah i can do it on the sixth", "affirm", 0.55)
    assert (await services.records.get_promise("US001"))["date"] == "2026-12-06"
