"""Consent records and the family contact they allow."""

from __future__ import annotations

import pytest

from bot.core import keys
from bot.domain.consent import ConsentMissing, FamilyContact, read_phone
from bot.services import Services


@pytest.mark.parametrize(("text", "phone", "rest"), [
    ("我妈 王秀英 13800001111", "+8613800001111", "我妈 王秀英"),
    ("老公138 0013 8000", "+8613800138000", "老公"),
    ("弟弟：+86 139-1234-5678", "+8613912345678", "弟弟"),
    ("my sister Amy 415-555-0199", "+14155550199", "my sister Amy"),
    ("brother John +1 (212) 555 0188", "+12125550188", "brother John"),
    ("wife (415) 555 0123", "+14155550123", "wife"),
])
def test_phone_numbers_are_read_as_e164(text: str, phone: str, rest: str) -> None:
    assert read_phone(text) == (phone, rest)


@pytest.mark.parametrize("text", ["my mum", "身份证后四位7789", "1985年3月12日", "call me at 12345"])
def test_no_phone_number_is_no_phone_number(text: str) -> None:
    assert read_phone(text) is None


async def test_no_contact_is_stored_without_a_granted_consent(services: Services) -> None:
    contact = FamilyContact("+8613800001111", "我妈")
    with pytest.raises(ConsentMissing):
        await services.consents.save_family_contact("CN001", contact)
    await services.consents.record("CN001", "family_contact", "declined", "c_x", "sms", "wording", "utter_x")
    with pytest.raises(ConsentMissing):
        await services.consents.save_family_contact("CN001", contact)
    assert await services.redis.exists(keys.family_contact("CN001")) == 0


async def test_withdrawal_deletes_the_contact_and_keeps_the_record(services: Services) -> None:
    granted = await services.consents.record("CN001", "family_contact", "granted", "c_x", "voice",
                                             "May we keep…", "utter_ask_family_consent")
    await services.consents.save_family_contact("CN001", FamilyContact("+8613800001111", "我妈"))
    assert await services.consents.withdraw("CN001", "family_contact", "c_x", "sms")
    record = await services.consents.get("CN001", "family_contact")
    assert record is not None and record["status"] == "withdrawn" and record["withdrawn_channel"] == "sms"
    assert record["wording"] == "May we keep…" and record["wording_version"] == granted["wording_version"]
    assert await services.consents.family_contact("CN001") is None
    assert not await services.consents.withdraw("CN001", "family_contact", "c_x", "sms")  # nothing left to withdraw
    events = [e[b"event"] for _, e in await services.redis.xrange(keys.AUDIT_STREAM)]
    lifecycle = [e for e in events if e.startswith((b"consent", b"family"))]
    assert lifecycle == [b"consent_granted", b"family_contact_saved", b"consent_withdrawn"]


def test_the_wording_version_changes_with_the_wording() -> None:
    from bot.domain.consent import wording_version

    assert wording_version("utter_a", "one text") == wording_version("utter_a", "one text")
    assert wording_version("utter_a", "one text") != wording_version("utter_a", "another text")


async def test_consent_records_are_sealed(services: Services) -> None:
    await services.consents.record("CN001", "family_contact", "granted", "c_x", "sms", "wording shown", "utter_x")
    raw = await services.redis.hget(keys.consent("CN001"), "family_contact")
    assert b"wording shown" not in raw and b"granted" not in raw
