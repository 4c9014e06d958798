"""Tests for bot.domain.payments: signed, expiring payment-link tokens."""

from __future__ import annotations

import base64
import time

import pytest

from bot.domain.payments import make_token, payment_link, read_token

SECRET = b"test-hmac-secret-that-is-long-enough-0123"
NOW = 1_800_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_roundtrip() -> None:
    token = make_token("CN001", SECRET, ttl_hours=72, now=NOW)

    assert read_token(token, SECRET, now=NOW) == "CN001"


def test_roundtrip_with_the_clock() -> None:
    assert read_token(make_token("US001", SECRET, ttl_hours=1), SECRET) == "US001"


def test_account_id_with_dots_survives() -> None:
    token = make_token("a.b.c", SECRET, ttl_hours=1, now=NOW)

    assert read_token(token, SECRET, now=NOW) == "a.b.c"


def test_token_is_url_safe() -> None:
    token = make_token("CN001", SECRET, ttl_hours=72, now=NOW)

    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_valid_until_expiry_then_none() -> None:
    token = make_token("CN001", SECRET, ttl_hours=2, now=NOW)

    assert read_token(token, SECRET, now=NOW + 2 * 3600) == "CN001"
    assert read_token(token, SECRET, now=NOW + 2 * 3600 + 1) is None


def test_expired_is_none() -> None:
    token = make_token("CN001", SECRET, ttl_hours=1, now=time.time() - 7200)

    assert read_token(token, SECRET) is None


def test_wrong_secret_is_none() -> None:
    token = make_token("CN001", SECRET, ttl_hours=72, now=NOW)

    assert read_token(token, SECRET + b"x", now=NOW) is None


def test_payload_naming_another_account_is_none() -> None:
    _, signature = make_token("CN001", SECRET, ttl_hours=72, now=NOW).split(".")
    expires = int(NOW + 72 * 3600)

    forged = f"{b64(f'CN002.{expires}'.encode())}.{signature}"

    assert read_token(forged, SECRET, now=NOW) is None


def test_payload_with_later_expiry_is_none() -> None:
    _, signature = make_token("CN001", SECRET, ttl_hours=1, now=NOW).split(".")

    forged = f"{b64(f'CN001.{int(NOW) + 10**6}'.encode())}.{signature}"

    assert read_token(forged, SECRET, now=NOW) is None


def test_tampered_signature_is_none() -> None:
    payload, signature = make_token("CN001", SECRET, ttl_hours=72, now=NOW).split(".")
    flipped = bytearray(base64.urlsafe_b64decode(signature + "=="))
    flipped[0] ^= 1

    assert read_token(f"{payload}.{b64(bytes(flipped))}", SECRET, now=NOW) is None


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", ".", "!!!.???", "é.ü", "Q04wMDE.", "\x00.\x00", "YWJj.YWJj"],
)
def test_garbage_is_none(token: str) -> None:
    assert read_token(token, SECRET, now=NOW) is None


def test_payment_link_fills_the_template() -> None:
    link = payment_link("https://pay.example-bank.test/p/{token}?src=sms", "CN001", SECRET, ttl_hours=72)

    prefix, _, rest = link.partition("/p/")
    token, _, query = rest.partition("?")
    assert prefix == "https://pay.example-bank.test"
    assert query == "src=sms"
    assert read_token(token, SECRET) == "CN001"
    assert "{token}" not in link
