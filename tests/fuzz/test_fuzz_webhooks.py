"""Twilio's webhooks as an attacker would post them: forged, cross-endpoint, tampered, truncated, oversized,
mis-encoded and replayed.

What each request must get follows bot/edge/gateway.py's ``signed_form`` and the handlers, in their order:

1. a Content-Length over 64 KiB (MAX_BODY_BYTES): 413, before anything else is looked at;
2. no X-Twilio-Signature (or an empty one): 403;
3. a Content-Type other than application/x-www-form-urlencoded: 400;
4. a body that does not decode in its charset, or a charset aiohttp cannot decode with: 400;
   (a body of 64 KiB or more without a Content-Length, i.e. chunked: 413 when read);
5. a signature that is not Twilio's for this URL (public base URL + path and query) and these fields: 403;
6. signed, but a malformed MessageSid / From (SMS), CallSid / ``silence`` (voice), sid / status (status): 400;
7. otherwise 200 with TwiML (SMS, voice) or 204 (status). A MessageSid seen before gets the same TwiML
   again, or an empty <Response /> while its first delivery is still in progress, and no second turn.

Every rejected request (1-6) must leave Redis exactly as it was (a SCAN + DUMP snapshot before and after):
the gateway touches Redis only after the form is signed and well formed. No exception: the webhooks keep
no rate-limit counters or audit entries for refused requests. Nothing may answer 500, and /healthz must
still answer 200 after every example.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from bot.contact import sms
from bot.core import keys
from bot.edge.gateway import MAX_BODY_BYTES
from tests.fuzz.helpers import (
    EMPTY_TWIML,
    Gateway,
    raw_http,
    raw_request,
    server_form,
    sign,
    signature_view,
    snapshot,
)
from tests.fuzz.helpers import fuzz as fuzz_settings

ENDPOINTS = ("/twilio/sms", "/twilio/voice", "/twilio/status")
# Another endpoint's URL, or the same one with a query Twilio would not have signed.
OTHER_URLS = ENDPOINTS + ("/twilio/voice?turn=1", "/twilio/voice?turn=1&silence=1", "/twilio/sms?x=1", "/healthz")
KNOWN_PHONES = ("+8613800138000", "+8613900139000", "+14155550123", "+12125550188")  # samples/accounts.csv
FORM = "application/x-www-form-urlencoded"
# Not the public base URL: another scheme, host, path prefix or a look-alike. (The same URL with its
# default port, :443, is the same URL to Twilio's validator, which tries with and without it.)
WRONG_BASES = ("http://bot.example-bank.test", "https://evil.example", "https://bot.example-bank.test.evil.example",
               "https://bot.example-bank.test/", "https://bot.example-bank.test:8443", "HTTPS://BOT.EXAMPLE-BANK.TEST",
               "https://bot.example-bank.test/twilio/sms#")
# Content types whose charset the gateway must refuse with 400 for any non-empty body: not codecs at all,
# bytes-to-bytes codecs (LookupError), the "undefined" codec (UnicodeError), an RFC 2231 charset*= that the
# email parser aiohttp uses returns as a tuple (TypeError).
BOGUS_CHARSETS = ("bogus", "x-user-defined-7", "utf-9", "rot13", "base64", "hex", "zlib", "uu", "bz2", "quopri",
                  "undefined")
BOGUS_CONTENT_TYPES = (*(f"{FORM}; charset={c}" for c in BOGUS_CHARSETS), f"{FORM}; charset*=utf-8''utf-8",
                       f"{FORM}; charset*=utf-8''bogus")
# Charsets that fail only on some bodies (idna and punycode decode plain ASCII): with a body they fail on.
# Until b2d8e08 these (and the ones above) escaped the gateway's except clause: 500.
EXOTIC_CONTENT_TYPES = (f"{FORM}; charset=undefined", f"{FORM}; charset=punycode", f"{FORM}; charset=idna",
                        f"{FORM}; charset*=utf-8''utf-8")

_MESSAGE_SID = re.compile(r"(SM|MM|SMS)[0-9a-fA-F]{32}")
_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
_STATUS = re.compile(r"[a-z_-]{3,24}")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_fresh = itertools.count()

# --- strategies -----------------------------------------------------------------------------------

# Any text a form can carry (urlencoded as UTF-8, so no lone surrogates): controls, NUL, RTL marks, emoji.
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
hostile_text = st.one_of(text, st.sampled_from([
    "", " ", "\x00", "%00", "../../etc/passwd", "<Response><Dial>+15550000</Dial></Response>", "]]>", "&amp;",
    "STOP", "退订", "START", "HELP", "=HYPERLINK(\"http://evil.example\")", "'; DROP TABLE x; --", "\u202e",
    "SM" + "a" * 32, "+8613800138000", "x" * 2000, "\r\n\r\nHTTP/1.1 200 OK", "{{7*7}}", "${jndi:ldap://x}"]))
message_sids = st.one_of(st.from_regex(r"(SM|MM|SMS)[0-9a-f]{32}", fullmatch=True), hostile_text)
call_sids = st.one_of(st.from_regex(r"CA[0-9a-fA-F]{32}", fullmatch=True), hostile_text)
phones = st.one_of(st.sampled_from(KNOWN_PHONES), st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True), hostile_text)
STATUSES = ("queued", "sent", "delivered", "undelivered", "failed", "completed", "no-answer")
statuses = st.one_of(st.sampled_from(STATUSES), hostile_text)
TWILIO_FIELDS = ("MessageSid", "SmsSid", "AccountSid", "From", "To", "Body", "NumMedia", "CallSid", "CallStatus",
                 "MessageStatus", "Direction", "AnsweredBy", "SpeechResult", "Digits", "ErrorCode", "bodySHA256")
field_names = st.one_of(st.sampled_from(TWILIO_FIELDS), text.filter(bool))


@st.composite
def forms(draw: st.DrawFn, endpoint: str | None = None) -> list[tuple[str, str]]:
    """A form for an endpoint, shaped like Twilio's (mostly) or not at all, with extra and repeated fields."""
    endpoint = endpoint or draw(st.sampled_from(ENDPOINTS))
    pairs: list[tuple[str, str]] = []
    if endpoint == "/twilio/sms":
        pairs += [("MessageSid", draw(message_sids)), ("From", draw(phones)), ("Body", draw(hostile_text))]
    elif endpoint == "/twilio/voice":
        pairs += [("CallSid", draw(call_sids)), ("From", draw(phones)), ("To", draw(phones))]
        pairs += draw(st.lists(st.tuples(st.sampled_from(["Direction", "AnsweredBy", "SpeechResult", "Digits"]),
                                         st.one_of(st.sampled_from(["outbound-api", "inbound", "machine_start",
                                                                    "human", "1", "2", "9", "9#", "*"]),
                                                   hostile_text)), max_size=3))
    else:
        kind = draw(st.sampled_from(["MessageSid", "CallSid"]))
        pairs += [(kind, draw(message_sids if kind == "MessageSid" else call_sids)),
                  ("MessageStatus" if kind == "MessageSid" else "CallStatus", draw(statuses))]
    pairs += draw(st.lists(st.tuples(field_names, hostile_text), max_size=4))
    if draw(st.booleans()):  # drop some of Twilio's fields
        pairs = [p for p in pairs if draw(st.booleans())]
    return draw(st.permutations(pairs))


def urlencoded(pairs: list[tuple[str, str]]) -> bytes:
    return urlencode(pairs).encode()


# --- what the gateway must answer ------------------------------------------------------------------


def first(pairs: Any, name: str) -> str:
    return next((v for k, v in pairs if k == name), "")


def signed_status(path_qs: str, pairs: list[tuple[str, str]]) -> int:
    """The status of a correctly signed, well-encoded request (step 6 and 7 of the module docstring)."""
    path, _, query = path_qs.partition("?")
    if path == "/twilio/sms":
        ok = _MESSAGE_SID.fullmatch(first(pairs, "MessageSid")) and _E164.fullmatch(first(pairs, "From"))
        return 200 if ok else 400
    if path == "/twilio/voice":  # a count of silences: one or two ASCII digits (not "²", which isdigit() takes)
        silence = next((v for k, v in _query_pairs(query) if k == "silence"), "0")
        ok = _CALL_SID.fullmatch(first(pairs, "CallSid")) and re.fullmatch(r"[0-9]{1,2}", silence)
        return 200 if ok else 400
    sid = first(pairs, "MessageSid") or first(pairs, "CallSid")
    status = first(pairs, "MessageStatus") or first(pairs, "CallStatus")
    return 204 if (_MESSAGE_SID.fullmatch(sid) or _CALL_SID.fullmatch(sid)) and _STATUS.fullmatch(status) else 400


def _query_pairs(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query, keep_blank_values=True)


async def unchanged(gateway: Gateway, before: dict[bytes, bytes], rasa_before: int, sms_before: int) -> None:
    """Nothing written, no turn taken, no SMS sent, no crash, and /healthz still fine."""
    await gateway.settle()
    gateway.recorder.check()
    assert await snapshot(gateway.redis) == before, "a refused request wrote to Redis"
    assert len(gateway.rasa.received) == rasa_before, "a refused request reached Rasa"
    assert len(gateway.standin.messages) == sms_before, "a refused request sent an SMS"
    await gateway.healthy()


@dataclass
class Attack:
    kind: str
    path_qs: str
    headers: dict[str, str]
    body: bytes
    expected: int


@st.composite
def attacks(draw: st.DrawFn, settings: Any, endpoint: str) -> Attack:
    """A request to ``endpoint`` the gateway must refuse, and the status it must refuse it with."""
    path_qs = endpoint
    if endpoint == "/twilio/voice":  # the URLs of a call's later turns, too
        path_qs = draw(st.sampled_from([endpoint, "/twilio/voice?turn=1", "/twilio/voice?turn=1&silence=2"]))
    pairs = draw(forms(path_qs.partition("?")[0]))
    body = urlencoded(pairs)
    valid = sign(settings, path_qs, pairs)
    forged = draw(st.one_of(st.sampled_from(["x", "=", "bm90IGEgc2lnbmF0dXJl", valid[:-2] + "==", valid.lower(),
                                             valid + "A", valid.swapcase(), valid + "\t" + valid]),
                            st.from_regex(r"[A-Za-z0-9+/]{27}=", fullmatch=True)))
    assume(forged != valid)
    kind = draw(st.sampled_from(["unsigned", "forged", "cross_endpoint", "other_base", "other_body", "added_value",
                                 "truncated", "oversized", "wrong_type", "bad_utf8", "bogus_charset"]))
    headers = {"Content-Type": FORM, "X-Twilio-Signature": valid}
    expected = 403
    if kind == "unsigned":
        if draw(st.booleans()):
            del headers["X-Twilio-Signature"]
        else:
            headers["X-Twilio-Signature"] = ""
        headers["Content-Type"] = draw(st.sampled_from([FORM, "application/json", "text/plain"]))
    elif kind == "forged":
        headers["X-Twilio-Signature"] = forged
    elif kind == "cross_endpoint":
        other = draw(st.sampled_from([u for u in OTHER_URLS if u != path_qs]))
        headers["X-Twilio-Signature"] = sign(settings, other, pairs)
    elif kind == "other_base":
        headers["X-Twilio-Signature"] = sign(settings, path_qs, pairs, base=draw(st.sampled_from(WRONG_BASES)))
    elif kind == "other_body":  # a signature Twilio made, for another form
        other_pairs = draw(forms(path_qs.partition("?")[0]))
        assume(signature_view(other_pairs) != signature_view(pairs))
        headers["X-Twilio-Signature"] = sign(settings, path_qs, other_pairs)
        assume(headers["X-Twilio-Signature"] != valid)
    elif kind == "added_value":  # a field repeated with another value: the signature covers every value
        name = draw(st.sampled_from([k for k, _ in pairs] or ["Body"]))
        value = draw(hostile_text)
        assume(value not in signature_view(pairs).get(name, set()))
        body = urlencoded(draw(st.permutations([*pairs, (name, value)])))
    elif kind == "truncated":  # cut anywhere, even inside a %-escape: the fields differ from the signed ones
        body = body[:draw(st.integers(0, max(len(body) - 1, 0)))]
        assume(signature_view(server_form(body)) != signature_view(pairs))
    elif kind == "oversized":  # just over 64 KiB, signed or not: refused before anything is read
        size = draw(st.integers(MAX_BODY_BYTES + 1, MAX_BODY_BYTES + 2048))
        big = [*pairs, ("Body", "x" * size)]
        body = urlencoded(big)
        if draw(st.booleans()):
            headers["X-Twilio-Signature"] = sign(settings, path_qs, big)
        else:
            headers.pop("X-Twilio-Signature")
        expected = 413
    elif kind == "wrong_type":
        content_type, body = draw(st.sampled_from(_wrong_types(pairs)))
        if content_type is None:
            del headers["Content-Type"]
        else:
            headers["Content-Type"] = content_type
        headers["X-Twilio-Signature"] = draw(st.sampled_from([valid, forged]))
        expected = 400
    elif kind == "bad_utf8":  # raw bytes that are not UTF-8, anywhere in the body
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe4\xb8", b"\x80",
                                     "张".encode("gbk"), "é".encode("latin-1"), "\ufeff".encode("utf-16")]))
        at = draw(st.integers(0, len(body)))
        body = body[:at] + junk + body[at:]
        headers["Content-Type"] = draw(st.sampled_from([FORM, f"{FORM}; charset=utf-8", f"{FORM}; charset=UTF-8"]))
        headers["X-Twilio-Signature"] = draw(st.sampled_from([valid, forged]))
        expected = 400
    elif kind == "bogus_charset":
        headers["Content-Type"] = draw(st.sampled_from(BOGUS_CONTENT_TYPES))
        headers["X-Twilio-Signature"] = draw(st.sampled_from([valid, forged]))
        # An empty body is never decoded: the signature (of an empty form, here) decides.
        expected = 400 if body or headers["X-Twilio-Signature"] == valid else 403
    return Attack(kind, path_qs, headers, body, expected)


def _wrong_types(pairs: list[tuple[str, str]]) -> list[tuple[str | None, bytes]]:
    import json

    boundary = "fuzzfuzzfuzz"
    multipart = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k.replace(chr(34), "")}"\r\n\r\n'
                        f"{v}\r\n" for k, v in pairs) + f"--{boundary}--\r\n"
    return [
        ("application/json", json.dumps(dict(pairs)).encode()),
        ("application/json", urlencoded(pairs)),
        ("text/plain", urlencoded(pairs)),
        ("text/xml", b"<Response/>"),
        (f"multipart/form-data; boundary={boundary}", multipart.encode()),
        ("multipart/form-data", multipart.encode()),
        ("application/x-www-form-urlencoded-evil", urlencoded(pairs)),
        ("text/x-www-form-urlencoded", urlencoded(pairs)),
        ("application/octet-stream", urlencoded(pairs)),
        (None, urlencoded(pairs)),  # no Content-Type at all: application/octet-stream
        ("", urlencoded(pairs)),  # empty: text/plain to the email parser aiohttp uses
        ("x-www-form-urlencoded", urlencoded(pairs)),
    ]


# --- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@fuzz_settings(scale=1.5)
@given(data=st.data())
async def test_forged_tampered_and_malformed_requests_are_refused_without_a_trace(gateway: Gateway, endpoint: str,
                                                                                  data: st.DataObject) -> None:
    attack = data.draw(attacks(gateway.settings, endpoint), label="attack")
    event(attack.kind)
    before = await snapshot(gateway.redis)
    rasa_before, sms_before = len(gateway.rasa.received), len(gateway.standin.messages)
    response = await raw_http(gateway.port, raw_request("POST", attack.path_qs, gateway.port, attack.headers,
                                                        attack.body))
    assert response.status == attack.expected, (attack.kind, response.status, response.body[:200])
    await unchanged(gateway, before, rasa_before, sms_before)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@fuzz_settings(scale=1)
@given(data=st.data())
async def test_correctly_signed_random_forms_get_their_defined_answer(gateway: Gateway, endpoint: str,
                                                                      data: st.DataObject) -> None:
    """Signed like Twilio, but with random fields: 400 without a write if malformed, otherwise a real answer."""
    pairs = data.draw(forms(endpoint), label="form")
    path_qs = endpoint
    if endpoint == "/twilio/voice" and data.draw(st.booleans()):
        silence = data.draw(st.one_of(st.from_regex(r"[0-9]{1,3}", fullmatch=True), hostile_text,
                                      st.sampled_from(["²", "١", "٣", "1" * 4301, "-1", "+1", " 1", "0x1", "1.0"])),
                             label="silence")
        path_qs += "?" + urlencode([("turn", "1"), ("silence", silence)])
    expected = signed_status(path_qs, pairs)
    event(f"{endpoint} -> {expected}")
    before = await snapshot(gateway.redis)
    rasa_before, sms_before = len(gateway.rasa.received), len(gateway.standin.messages)
    headers = {"Content-Type": FORM, "X-Twilio-Signature": sign(gateway.settings, path_qs, pairs)}
    response = await raw_http(gateway.port, raw_request("POST", path_qs, gateway.port, headers, urlencoded(pairs)))
    assert response.status == expected, (response.status, response.body[:300])
    await gateway.settle()
    if expected == 400:
        await unchanged(gateway, before, rasa_before, sms_before)
        return
    gateway.recorder.check()
    if endpoint == "/twilio/status":  # a sid we never sent: accepted and ignored, nothing written
        assert await snapshot(gateway.redis) == before
    else:
        twiml = response.body.decode()
        assert ET.fromstring(twiml).tag == "Response"
        if endpoint == "/twilio/sms":
            assert all(sms.segments(m.text or "") <= sms.MAX_SEGMENTS for m in ET.fromstring(twiml).iter("Message"))
            stored = await gateway.redis.get(keys.webhook_seen(first(pairs, "MessageSid")))
            assert stored is not None and gateway.services.vault.open(stored) == twiml, "the answer kept for replays"
    assert len(gateway.rasa.received) <= rasa_before + 2  # a call's first step: /session_start and /greet
    await gateway.healthy()


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[tuple[str, str]], str]:
    """A well-formed inbound SMS with a MessageSid never used before; its phone and body are anything."""
    sid = f"SM{next(_fresh):032x}"
    phone = draw(st.one_of(st.sampled_from(KNOWN_PHONES), st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)))
    body = draw(hostile_text)
    pairs = [("MessageSid", sid), ("AccountSid", "AC" + "0" * 32), ("From", phone), ("To", "+15005550006"),
             ("Body", body), ("NumMedia", "0")]
    return draw(st.permutations(pairs)), sid


@fuzz_settings(scale=1)
@given(delivery=deliveries(), replays=st.lists(st.sampled_from(["same", "repeated_field", "concurrent"]),
                                               min_size=1, max_size=3))
async def test_a_replayed_message_sid_answers_as_before_and_takes_no_second_turn(
        gateway: Gateway, delivery: tuple[list[tuple[str, str]], str], replays: list[str]) -> None:
    pairs, _ = delivery
    signature = sign(gateway.settings, "/twilio/sms", pairs)
    headers = {"Content-Type": FORM, "X-Twilio-Signature": signature}
    post = raw_request("POST", "/twilio/sms", gateway.port, headers, urlencoded(pairs))
    answer = await raw_http(gateway.port, post)
    assert answer.status == 200
    gateway.recorder.check()
    after_first = await snapshot(gateway.redis)
    rasa_after, sms_after = len(gateway.rasa.received), len(gateway.standin.messages)
    for replay in replays:
        if replay == "repeated_field":  # the same value twice is the same form to Twilio's signature
            name, value = pairs[0]
            again = raw_request("POST", "/twilio/sms", gateway.port, headers, urlencoded([*pairs, (name, value)]))
            responses = [await raw_http(gateway.port, again)]
        elif replay == "concurrent":
            responses = await asyncio.gather(*(raw_http(gateway.port, post) for _ in range(4)))
        else:
            responses = [await raw_http(gateway.port, post)]
        for response in responses:
            assert (response.status, response.body) == (200, answer.body), replay
    # Replays read; they never write, never reach Rasa, never send.
    await unchanged(gateway, after_first, rasa_after, sms_after)


@fuzz_settings(scale=1)
@given(delivery=deliveries(), copies=st.integers(2, 6))
async def test_simultaneous_deliveries_of_one_message_take_one_turn(
        gateway: Gateway, delivery: tuple[list[tuple[str, str]], str], copies: int) -> None:
    pairs, _ = delivery
    phone, body = first(pairs, "From"), first(pairs, "Body")
    # A Rasa turn is due for a known borrower's non-empty message that is not a keyword (nobody holds it).
    turns = int(phone in KNOWN_PHONES and sms.keyword(body) is None and bool(body.strip()))
    rasa_before = len(gateway.rasa.received)
    headers = {"Content-Type": FORM, "X-Twilio-Signature": sign(gateway.settings, "/twilio/sms", pairs)}
    post = raw_request("POST", "/twilio/sms", gateway.port, headers, urlencoded(pairs))
    responses = await asyncio.gather(*(raw_http(gateway.port, post) for _ in range(copies)))
    assert {r.status for r in responses} == {200}
    assert len(gateway.rasa.received) == rasa_before + turns
    final = await raw_http(gateway.port, post)
    answers = {r.body for r in responses}
    # Each copy got the turn's answer, or an empty answer while the turn was still in progress.
    assert final.body in answers and answers <= {final.body, EMPTY_TWIML.encode()}
    gateway.recorder.check()
    await gateway.healthy()


@fuzz_settings(scale=1)
@given(data=st.data())
async def test_broken_http_framing_is_refused_without_a_trace(gateway: Gateway, data: st.DataObject) -> None:
    """What only a raw socket can send: a body cut short by a dying client, lying or conflicting lengths,
    chunked bodies over the limit, malformed headers."""
    endpoint = data.draw(st.sampled_from(ENDPOINTS), label="endpoint")
    pairs = data.draw(forms(endpoint), label="form")
    body = urlencoded(pairs)
    signature = sign(gateway.settings, endpoint, pairs)
    kind = data.draw(st.sampled_from(["cut_short", "claims_oversize", "chunked_oversize", "chunked_unsigned",
                                      "bad_length", "conflicting_lengths", "smuggling", "bad_header"]), label="kind")
    port = gateway.port
    base = {"Content-Type": FORM, "X-Twilio-Signature": signature}
    half_close, reaches_app = False, True
    if kind == "cut_short":  # Content-Length promises more than arrives before the client goes away
        cut = data.draw(st.integers(0, max(len(body) - 1, 0)), label="cut")
        request = raw_request("POST", endpoint, port, {**base, "Content-Length": str(len(body))}, body[:cut],
                              content_length=False)
        half_close, expected = True, {None}  # the client is gone: nobody to answer
    elif kind == "claims_oversize":  # refused on the header alone, without waiting for the body
        length = data.draw(st.integers(MAX_BODY_BYTES + 1, 2**40), label="length")
        request = raw_request("POST", endpoint, port, {**base, "Content-Length": str(length)}, body,
                              content_length=False)
        expected = {413}
    elif kind in ("chunked_oversize", "chunked_unsigned"):  # no Content-Length to check up front
        big = urlencoded([*pairs, ("Body", "x" * (MAX_BODY_BYTES + data.draw(st.integers(0, 4096))))])
        chunked = f"{len(big):x}\r\n".encode() + big + b"\r\n0\r\n\r\n"
        headers = {**base, "Transfer-Encoding": "chunked"}
        if kind == "chunked_unsigned":
            del headers["X-Twilio-Signature"]
        request = raw_request("POST", endpoint, port, headers, chunked, content_length=False)
        expected = {413} if kind == "chunked_oversize" else {403}
    elif kind == "bad_length":
        length = data.draw(st.sampled_from(["-1", "abc", "1e3", "0x10", " ", "+5", "99999999999999999999999"]))
        request = raw_request("POST", endpoint, port, {**base, "Content-Length": length}, body, content_length=False)
        expected, reaches_app = {400}, False
    elif kind == "conflicting_lengths":
        request = raw_request("POST", endpoint, port, {**base, "Content-Length": str(len(body) + 1)}, body)
        expected, reaches_app = {400}, False
    elif kind == "smuggling":  # Content-Length and Transfer-Encoding together
        request = raw_request("POST", endpoint, port, {**base, "Transfer-Encoding": "chunked"},
                              b"0\r\n\r\n" + body)
        expected, reaches_app = {400}, False
    else:
        bad = data.draw(st.sampled_from([("X-Twilio-Signature", signature + "\x00"), ("Bad Name", "x"),
                                         ("X-Twilio-Signature", signature + "\x7f\x01"), ("", "x")]))
        request = raw_request("POST", endpoint, port, base, body).replace(
            b"Connection: close\r\n", f"Connection: close\r\n{bad[0]}: {bad[1]}\r\n".encode("latin-1"))
        expected, reaches_app = {400}, False
    before = await snapshot(gateway.redis)
    rasa_before, sms_before = len(gateway.rasa.received), len(gateway.standin.messages)
    gateway.recorder.seen.clear()
    response = await raw_http(port, request, half_close=half_close)
    assert response.status in expected, (kind, response.status, response.body[:200])
    if not reaches_app:  # refused by aiohttp's HTTP parser before any handler or middleware
        assert gateway.recorder.seen == []
    await unchanged(gateway, before, rasa_before, sms_before)


# --- regressions: what the fuzzing found (500s until b2d8e08), pinned ------------------------------------


@pytest.mark.parametrize("content_type", EXOTIC_CONTENT_TYPES, ids=["undefined", "punycode", "idna", "rfc2231"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_charset_the_form_parser_cannot_use_is_400_even_with_a_forged_signature(
        gateway: Gateway, endpoint: str, content_type: str) -> None:
    before = await snapshot(gateway.redis)
    headers = {"Content-Type": content_type, "X-Twilio-Signature": "forged"}
    response = await raw_http(gateway.port, raw_request("POST", endpoint, gateway.port, headers, b"Body=a%FF&x=..y"))
    assert response.status == 400
    await unchanged(gateway, before, 0, 0)


@pytest.mark.parametrize("silence", ["²", "١", "1" * 4301, "100"], ids=["superscript", "arabic-indic", "4301-digits",
                                                                         "three-digits"])
async def test_a_silence_count_of_other_than_one_or_two_ascii_digits_is_400(gateway: Gateway, silence: str) -> None:
    path_qs = "/twilio/voice?" + urlencode([("turn", "1"), ("silence", silence)])
    pairs = [("CallSid", "CA" + "1" * 32), ("From", "+8613700000000")]
    headers = {"Content-Type": FORM, "X-Twilio-Signature": sign(gateway.settings, path_qs, pairs)}
    before = await snapshot(gateway.redis)
    response = await raw_http(gateway.port, raw_request("POST", path_qs, gateway.port, headers, urlencoded(pairs)))
    assert response.status == 400
    await unchanged(gateway, before, 0, 0)
