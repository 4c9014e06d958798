"""Right-party verification: does the answer match the ledger?

An answer must name one thing: a message listing many dates or digit groups
is a guess at all of them and counts as a failed attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.dates import birth_date_candidates, id_last4_candidates
from bot.domain.ledger import Account

MAX_ATTEMPTS = 3
MAX_ANSWER_LENGTH = 120  # longer texts are not answers; also bounds the parsing work


@dataclass(frozen=True)
class Answer:
    """What a message offers as proof of identity."""

    birth_dates: frozenset
    id_endings: frozenset

    @property
    def present(self) -> bool:
        return bool(self.birth_dates or self.id_endings)

    @property
    def too_many(self) -> bool:
        # A numeric date such as 03/12/1985 honestly yields two readings.
        return len(self.id_endings) > 1 or len(self.birth_dates) > 2


def read_answer(text: str) -> Answer:
    """The birth dates and ID-card endings a message states."""
    if len(text) > MAX_ANSWER_LENGTH:
        return Answer(frozenset(), frozenset())
    return Answer(frozenset(birth_date_candidates(text)), frozenset(id_last4_candidates(text)))


def matches(account: Account, answer: Answer) -> bool:
    """True if the answer states the account's birth date or ID-card ending, and nothing else."""
    if not answer.present or answer.too_many:
        return False
    return account.birth_date in answer.birth_dates or account.id_last4 in answer.id_endings
