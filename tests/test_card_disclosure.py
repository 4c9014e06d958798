"""A verified card holder hears the unpaid minimum and the statement balance, not the whole balance as overdue."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.dialogue import conversation
from bot.domain.ledger import ACCOUNT_COLUMNS, INSTALLMENT_COLUMNS
from bot.services import Services
from tests.csv_files import write_csv
from tests.test_actions import PHONES, TODAY
from tests.test_flows import NOW, Chat

PHONE = "+12125550199"


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conversation, "local_today", lambda account: TODAY)
    monkeypatch.setattr(conversation, "utc_now", lambda: NOW)


async def card_holder(services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Chat:
    account = {"account_id": "CARD1", "name": "Ann Lee", "phone": PHONE, "language": "en",
               "timezone": "America/New_York", "product": "credit_card", "currency": "USD", "id_last4": "4321",
               "birth_date": "1985-02-02", "address": "", "employer": "", "region": "NY"}
    statements = [
        {"account_id": "CARD1", "installment_no": "1", "due_date": "2026-10-05", "amount_due": "1800.00",
         "amount_paid": "60.00", "paid_date": "2026-10-04", "minimum_due": "60.00"},
        {"account_id": "CARD1", "installment_no": "2", "due_date": "2026-11-05", "amount_due": "1900.00",
         "amount_paid": "20.00", "paid_date": "2026-11-04", "minimum_due": "65.00"},
    ]
    await services.ledger.import_files(write_csv(tmp_path / "a.csv", ACCOUNT_COLUMNS, [account]),
                                       write_csv(tmp_path / "i.csv", (*INSTALLMENT_COLUMNS, "minimum_due"), statements),
                                       date(2026, 11, 29))
    monkeypatch.setitem(PHONES, "CARD1", PHONE)
    chat = Chat(services, "CARD1")
    chat.slots["language"] = "en"
    return chat


async def test_the_unpaid_minimum_is_what_is_overdue(services: Services, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    chat = await card_holder(services, tmp_path, monkeypatch)
    reply = await chat.say("how much do I owe", "ask_balance")
    assert "minimum payment is overdue: $45.00" in reply
    assert "Statement balance $1,900.00" in reply
    assert "$1,900.00 overdue" not in reply
