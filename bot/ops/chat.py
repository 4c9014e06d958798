"""Talk to the gateway as a borrower would, over SMS webhooks signed like Twilio's."""

from __future__ import annotations

import asyncio
import sys
import uuid
import xml.etree.ElementTree as ET

import aiohttp
from twilio.request_validator import RequestValidator

from bot.core.settings import Settings


def signed_sms(settings: Settings, phone: str, body: str, sid: str | None = None) -> tuple[dict[str, str], str]:
    """The form Twilio would post for this SMS, and its X-Twilio-Signature."""
    form = {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "AccountSid": settings.twilio_account_sid,
        "From": phone,
        "To": settings.twilio_from,
        "Body": body,
        "NumMedia": "0",
    }
    url = settings.public_base_url + "/twilio/sms"
    return form, RequestValidator(settings.twilio_auth_token).compute_signature(url, form)


def messages_in(twiml: str) -> list[str]:
    """The texts of a TwiML reply's <Message> elements."""
    return [m.text or "" for m in ET.fromstring(twiml).iter("Message")]


async def send(session: aiohttp.ClientSession, settings: Settings, phone: str, body: str) -> list[str]:
    """Post one signed SMS to the local gateway and return the bot's replies."""
    form, signature = signed_sms(settings, phone, body)
    url = f"http://127.0.0.1:{settings.gateway_port}/twilio/sms"
    async with session.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response:
        text = await response.text()
        if response.status != 200:
            return [f"[gateway answered HTTP {response.status}: {text.strip()}]"]
        return messages_in(text)


async def chat(settings: Settings, phone: str) -> None:
    """Read lines from stdin, print the bot's replies, until end of input."""
    print(f"Texting as {phone}; Ctrl-D to quit.", flush=True)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        while True:
            print("you> ", end="", flush=True)
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                print()
                return
            if line.strip():
                for reply in await send(session, settings, phone, line.strip()):
                    print(f"bot> {reply}", flush=True)
