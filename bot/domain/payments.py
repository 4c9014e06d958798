"""Payment links: signed, expiring, bound to one account."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

_CONTEXT = b"payment-link:v1:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(payload: str, secret: bytes) -> bytes:
    return hmac.new(secret, _CONTEXT + payload.encode(), hashlib.sha256).digest()[:16]


def make_token(account_id: str, secret: bytes, ttl_hours: int, now: float | None = None) -> str:
    """A URL-safe token naming the account and its expiry, signed."""
    expires = int((now or time.time()) + ttl_hours * 3600)
    payload = f"{account_id}.{expires}"
    return f"{_b64(payload.encode())}.{_b64(_signature(payload, secret))}"


def read_token(token: str, secret: bytes, now: float | None = None) -> str | None:
    """The account id of a valid, unexpired token; None if tampered or expired."""
    try:
        payload_part, signature_part = token.split(".")
        payload = _unb64(payload_part).decode()
        signature = _unb64(signature_part)
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(signature, _signature(payload, secret)):
        return None
    account_id, _, expires = payload.rpartition(".")
    if not expires.isdigit() or int(expires) < (now or time.time()):
        return None
    return account_id


def payment_link(template: str, account_id: str, secret: bytes, ttl_hours: int) -> str:
    """The borrower's link, from the configured URL template."""
    return template.format(token=make_token(account_id, secret, ttl_hours))
