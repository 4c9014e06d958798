"""Right-party verification: does the answer match the ledger?"""

from __future__ import annotations

from bot.dates import birth_date_candidates, id_last4_candidates
from bot.ledger import Account

MAX_ATTEMPTS = 3


def looks_like_answer(text: str) -> bool:
    """True if the text holds something that could be a birth date or ID digits."""
    return bool(birth_date_candidates(text) or id_last4_candidates(text))


def matches(account: Account, text: str) -> bool:
    """True if the text states the account's birth date or the ID card's last four."""
    return account.birth_date in birth_date_candidates(text) or account.id_last4 in id_last4_candidates(text)
