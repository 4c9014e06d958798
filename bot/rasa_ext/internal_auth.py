"""The token Rasa presents to the action server: only Rasa, on this machine, may run actions.

Rasa sends the action endpoint's ``token`` (endpoints.yml, the same RASA_TOKEN that guards
Rasa's own HTTP API) as the ``token`` query parameter on every call.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sanic import response

log = logging.getLogger(__name__)

OPEN_PATHS = ("/health",)  # says only "ok": for process supervision


def require_token(token: str) -> Callable[[Any], Awaitable[Any]]:
    """A Sanic request middleware answering 401 to any call without the token."""
    expected = token.encode()

    async def check(request: Any) -> Any:
        if request.path in OPEN_PATHS:
            return None
        sent = str(request.args.get("token", "")).encode()
        if not hmac.compare_digest(sent, expected):
            log.warning("action server: call without a valid token refused (%s)", request.path)
            return response.json({"error": "a valid token is required"}, status=401)
        return None

    return check
