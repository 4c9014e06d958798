"""The voice webhook: exact TwiML for every state of a call, signed like Twilio.

Rasa is the recording stand-in from test_gateway; SMS sent during calls go
through the real twilio library to the local Twilio stand-in.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from bot.core.crypto import pseudonym
from bot.core.settings import Settings
from bot.edge.gateway import init_app
from bot.ops import twilio_standin
from bot.services import Services
from tests.conftest import FakeRasa
from tests.test_gateway import CN_PHONE, US_PHONE

CALL_SID = "CA" + "f" * 32
XML = '<?xml version="1.0" encoding="UTF-8"?>'
ZH_HINTS = "是,不是,还款,人工,转人工,明天,后天,下周,号,月,身份证,后四位,出生,年"
EN_HINTS = "yes,no,pay,agent,person,tomorrow,next week,friday,monday,birthday,last four digits"


@dataclasses.dataclass
class Call:
    client: TestClient
    settings: Settings
    rasa: FakeRasa
    standin: twilio_standin.StandIn

    async def post(self, query: str = "", phone: str = CN_PHONE, **fields: str) -> tuple[int, str]:
        form = {"CallSid": CALL_SID, "AccountSid": self.settings.twilio_account_sid, "From": phone,
                "To": self.settings.twilio_from, "Direction": "inbound", "CallStatus": "in-progress", **fields}
        path = "/twilio/voice" + query
        signature = RequestValidator(self.settings.twilio_auth_token).compute_signature(
            self.settings.public_base_url + path, form)
        response = await self.client.post(path, data=form, headers={"X-Twilio-Signature": signature})
        return response.status, await response.text()


@pytest.fixture
async def call_factory(services: Services, rasa: tuple[FakeRasa, str]) -> AsyncIterator[Any]:
    standin = TestServer(twilio_standin.init_app(services.settings.twilio_account_sid,
                                                 services.settings.twilio_auth_token))
    await standin.start_server()
    clients = []

    async def make(**overrides: Any) -> Call:
        settings = dataclasses.replace(services.settings, rasa_url=rasa[1], action_url=rasa[1],
                                       twilio_api_base_url=str(standin.make_url("")).rstrip("/"), **overrides)
        client = TestClient(TestServer(init_app(settings)))
        await client.start_server()
        clients.append(client)
        return Call(client, settings, rasa[0], standin.app[twilio_standin.STATE])

    yield make
    for client in clients:
        await client.close()
    await standin.close()


@pytest.fixture
async def call(call_factory: Any) -> Call:
    return await call_factory()


def gathered(says: str, language: str = "cmn-Hans-CN", hints: str = ZH_HINTS, silence: int = 1) -> str:
    return (f'{XML}<Response><Gather action="/twilio/voice?turn=1" hints="{hints}" input="speech dtmf" '
            f'language="{language}" method="POST" speechTimeout="auto" timeout="4">{says}</Gather>'
            f'<Redirect method="POST">/twilio/voice?turn=1&amp;silence={silence}</Redirect></Response>')


def zh_say(text: str) -> str:
    return f'<Say language="cmn-CN" voice="Polly.Zhiyu">{text}</Say>'


def en_say(text: str) -> str:
    return f'<Say language="en-US" voice="Polly.Joanna">{text}</Say>'


ZH_INTRO = zh_say("您好，这里是示例银行的智能助理。")
EN_INTRO = en_say("Hello, this is Example Bank's automated assistant.")
EN_OPT_OUT_KEY = en_say("To stop these calls and texts at any time, press 8.")  # TCPA-REVOCATION-2025


async def test_a_call_opens_with_a_greeting_turn_in_the_callers_language(call: Call) -> None:
    status, twiml = await call.post()
    assert status == 200
    assert twiml == gathered(ZH_INTRO + zh_say("Hello from the bot."))
    assert [m["message"] for m in call.rasa.received] == ["/session_start", "/greet"]
    assert {m["metadata"]["channel"] for m in call.rasa.received} == {"voice"}


async def test_an_english_caller_hears_an_english_voice(call: Call) -> None:
    _, twiml = await call.post(phone=US_PHONE)
    assert twiml == gathered(EN_INTRO + EN_OPT_OUT_KEY + en_say("Hello from the bot."), "en-US", EN_HINTS)


@pytest.mark.parametrize(("digits", "message"), [("1", "/pay_now"), ("2", "/request_human"), ("4421", "4421"),
                                                 ("4421#", "4421")])
async def test_keys_become_messages(call: Call, digits: str, message: str) -> None:
    await call.post("?turn=1", Digits=digits)
    assert call.rasa.received[-1]["message"] == message


async def test_after_a_numbered_list_a_key_is_the_choice_not_a_shortcut(call: Call) -> None:
    call.rasa.customs = [{"call": "keys_answer"}]  # the bot listed plans or visit slots
    await call.post("?turn=1", SpeechResult="我想分期")
    call.rasa.customs = []
    await call.post("?turn=1", Digits="2")
    assert call.rasa.received[-1]["message"] == "2"
    await call.post("?turn=1", Digits="2")  # the next turn listed nothing: 2 is a person again
    assert call.rasa.received[-1]["message"] == "/request_human"


async def test_speech_is_the_message(call: Call) -> None:
    await call.post("?turn=1", SpeechResult="我下周五还")
    assert call.rasa.received[-1]["message"] == "我下周五还"


async def test_nine_repeats_what_was_said_without_a_turn(call: Call) -> None:
    await call.post("?turn=1", SpeechResult="你好")
    call.rasa.replies = ["something else"]
    _, twiml = await call.post("?turn=1", Digits="9")
    assert twiml == gathered(zh_say("Hello from the bot."))
    assert len(call.rasa.received) == 1


async def test_silence_is_reprompted_twice_then_the_call_ends_with_an_sms(call: Call) -> None:
    _, first = await call.post("?turn=1&silence=1")
    assert first == gathered(zh_say("请问您还在吗？请说话，或按9重听选项。"), silence=2)
    _, second = await call.post("?turn=1&silence=2")
    assert second == gathered(zh_say("请问您还在吗？请说话，或按9重听选项。"), silence=3)
    _, last = await call.post("?turn=1&silence=3")
    goodbye = zh_say("没有听到您的声音，我先挂断了，稍后会给您发短信。再见。")
    assert last == f"{XML}<Response>{goodbye}<Hangup /></Response>"
    assert call.rasa.received == []


async def test_a_star_keys_the_x_of_a_chinese_id_card(call: Call) -> None:
    await call.post("?turn=1", Digits="561*")
    assert call.rasa.received[-1]["message"] == "561X"


async def test_a_withheld_number_hears_the_unknown_caller_answer(call: Call) -> None:
    _, twiml = await call.post(phone="anonymous")
    assert "We could not find this number in our records" in twiml and "<Hangup />" in twiml
    assert call.rasa.received == []


async def test_rasa_down_on_a_call_is_an_apology_not_an_application_error(call: Call) -> None:
    call.rasa.up = False
    status, twiml = await call.post("?turn=1", SpeechResult="hello")
    assert status == 200
    assert "暂时无法处理您的来电" in twiml and "<Hangup />" in twiml


async def test_a_caller_turn_counts_as_a_phone_conversation(call: Call, services: Services) -> None:
    await call.post("?turn=1", SpeechResult="你好")
    [attempt] = await services.policy.attempts("CN001")
    assert attempt.channel == "call" and attempt.answered


async def test_an_answering_machine_hears_only_the_bank_and_a_number(call: Call) -> None:
    _, twiml = await call.post(phone=US_PHONE, Direction="outbound-api", To=US_PHONE, From="+15005550006",
                               AnsweredBy="machine_end_beep")
    assert twiml == (f"{XML}<Response>{en_say('Hello, this is Example Bank. Please call us back on 95588. Thank you.')}"
                     "<Hangup /></Response>")
    assert call.rasa.received == []


async def test_an_outbound_call_is_the_called_borrowers_conversation(call: Call) -> None:
    _, twiml = await call.post(Direction="outbound-api", To=US_PHONE, From="+15005550006", AnsweredBy="human")
    assert twiml == gathered(EN_INTRO + EN_OPT_OUT_KEY + en_say("Hello from the bot."), "en-US", EN_HINTS)


async def test_in_the_us_the_opt_out_key_stops_calls_and_texts_and_ends_the_call(call: Call,
                                                                                services: Services) -> None:
    _, twiml = await call.post("?turn=1", phone=US_PHONE, Digits="8")
    said = en_say("Done: Example Bank will not call or text you about this account again. Goodbye.")
    assert twiml == f"{XML}<Response>{said}<Hangup /></Response>"
    assert call.rasa.received == []
    account = await services.ledger.get("US001")
    assert account is not None
    for channel in ("sms", "call"):
        assert not (await services.policy.decide(account, channel, record=False)).allowed


async def test_in_china_the_key_8_is_no_opt_out_and_reaches_the_bot(call: Call, services: Services) -> None:
    _, twiml = await call.post("?turn=1", Digits="8")
    assert "<Hangup />" not in twiml and len(call.rasa.received) == 1
    assert not await services.records.is_opted_out(pseudonym(CN_PHONE, services.settings.hmac_secret))


async def test_an_unknown_caller_hears_nothing_about_any_account(call: Call) -> None:
    _, twiml = await call.post(phone="+447700900123")
    assert "<Hangup />" in twiml and "We could not find this number in our records" in twiml
    assert call.rasa.received == []


async def test_a_request_for_a_person_is_transferred_when_agents_have_a_number(call_factory: Any) -> None:
    call = await call_factory(agent_phone="+8610955880000")
    call.rasa.customs = [{"call": "transfer"}]
    _, twiml = await call.post("?turn=1", Digits="2")
    assert twiml == f"{XML}<Response>{zh_say('请稍候，正在为您转接工作人员。')}<Dial>+8610955880000</Dial></Response>"


async def test_without_an_agents_number_the_caller_hears_the_callback_promise(call: Call) -> None:
    call.rasa.customs = [{"call": "transfer"}]
    call.rasa.replies = ["工作人员会在工作时间给您回电。"]
    _, twiml = await call.post("?turn=1", Digits="2")
    assert twiml == gathered(zh_say("工作人员会在工作时间给您回电。"), silence=1)


async def test_goodbye_hangs_up(call: Call) -> None:
    call.rasa.customs = [{"call": "hangup"}]
    call.rasa.replies = ["感谢您的回复，再见。"]
    _, twiml = await call.post("?turn=1", SpeechResult="再见")
    assert twiml == f"{XML}<Response>{zh_say('感谢您的回复，再见。')}<Hangup /></Response>"


async def test_the_payment_link_asked_for_on_a_call_goes_by_sms(call: Call) -> None:
    call.rasa.customs = [{"sms": "您可通过以下安全链接还款：https://pay.example-bank.test/p/x"}]
    await call.post("?turn=1", Digits="1")
    for _ in range(100):  # the SMS leaves after the TwiML, so the caller does not wait for it
        if call.standin.messages:
            break
        await asyncio.sleep(0.02)
    [message] = call.standin.messages
    assert message["to"] == CN_PHONE and message["body"].endswith("/p/x")


async def test_a_recorded_call_says_so_after_naming_the_bank(call_factory: Any) -> None:
    call = await call_factory(call_recording=True)
    call.rasa.replies = ["您好，这里是示例银行的智能助理。", "为保护您的隐私……"]
    _, twiml = await call.post()
    assert twiml == gathered(zh_say("您好，这里是示例银行的智能助理。") + zh_say("本次通话将被录音。")
                             + zh_say("为保护您的隐私……"))


@pytest.mark.parametrize("fields", [{"CallSid": ""}, {"CallSid": "CA123"}])
async def test_malformed_voice_requests_are_400(call: Call, fields: dict[str, str]) -> None:
    status, _ = await call.post(**fields)
    assert status == 400


async def test_unsigned_voice_requests_are_403(call: Call) -> None:
    response = await call.client.post("/twilio/voice", data={"CallSid": CALL_SID, "From": CN_PHONE})
    assert response.status == 403
