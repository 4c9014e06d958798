"""Tests for bot.core.crypto: phone pseudonyms, the encrypting Vault and log masking."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet, InvalidToken

from bot.core.crypto import MaskingFilter, Vault, mask_text, pseudonym

SECRET = b"a-test-secret-that-is-long-enough-0123"
PHONE = "+8613800138000"
RECORD = {"name": "张伟", "phone": PHONE, "amount": "3500.00", "items": [1, 2]}


# --- pseudonym ------------------------------------------------------------------


def test_pseudonym_is_stable() -> None:
    assert pseudonym(PHONE, SECRET) == pseudonym(PHONE, SECRET)


def test_pseudonym_ignores_surrounding_spaces() -> None:
    assert pseudonym(f"  {PHONE}\n", SECRET) == pseudonym(PHONE, SECRET)


def test_pseudonym_shape() -> None:
    conversation_id = pseudonym(PHONE, SECRET)

    assert conversation_id.startswith("c_")
    assert len(conversation_id) == 34
    assert all(c in "0123456789abcdef" for c in conversation_id[2:])


def test_pseudonym_is_keyed() -> None:
    assert pseudonym(PHONE, SECRET) != pseudonym(PHONE, SECRET + b"x")


def test_pseudonym_differs_per_phone() -> None:
    assert pseudonym(PHONE, SECRET) != pseudonym("+8613800138001", SECRET)


@pytest.mark.parametrize("phone", [PHONE, "+14155550123", "+12125550188"])
def test_pseudonym_does_not_contain_the_phone(phone: str) -> None:
    conversation_id = pseudonym(phone, SECRET)

    assert phone not in conversation_id
    assert phone[1:] not in conversation_id
    assert phone[-7:] not in conversation_id


# --- Vault ------------------------------------------------------------------------


def test_vault_roundtrip() -> None:
    vault = Vault((Fernet.generate_key().decode(),))

    assert vault.open(vault.seal(RECORD)) == RECORD


def test_vault_opens_str_tokens() -> None:
    vault = Vault((Fernet.generate_key().decode(),))

    assert vault.open(vault.seal(RECORD).decode()) == RECORD


def test_sealed_record_hides_its_content() -> None:
    sealed = Vault((Fernet.generate_key().decode(),)).seal(RECORD)

    assert "张伟".encode() not in sealed
    assert b"13800138000" not in sealed


def test_tampered_token_is_refused() -> None:
    vault = Vault((Fernet.generate_key().decode(),))
    sealed = bytearray(vault.seal(RECORD))
    sealed[40] = ord("A") if sealed[40] != ord("A") else ord("B")

    with pytest.raises(InvalidToken):
        vault.open(bytes(sealed))


def test_token_of_another_key_is_refused() -> None:
    sealed = Vault((Fernet.generate_key().decode(),)).seal(RECORD)

    with pytest.raises(InvalidToken):
        Vault((Fernet.generate_key().decode(),)).open(sealed)


def test_old_token_opens_after_a_new_key_is_put_first() -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = Vault((old_key,)).seal(RECORD)

    assert Vault((new_key, old_key)).open(sealed) == RECORD


def test_rotate_reencrypts_under_the_new_key() -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = Vault((old_key,)).seal(RECORD)

    rotated = Vault((new_key, old_key)).rotate(sealed)

    assert rotated != sealed
    assert Vault((new_key,)).open(rotated) == RECORD
    with pytest.raises(InvalidToken):
        Vault((old_key,)).open(rotated)


def test_new_seals_use_the_first_key() -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    sealed = Vault((new_key, old_key)).seal(RECORD)

    assert Vault((new_key,)).open(sealed) == RECORD


# --- masking -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +8613800138000 now", "call *** now"),
        ("call +86 138 0013 8000 now", "call *** now"),
        ("我的电话13800138000", "我的电话***"),
        ("(415) 555-0123", "***"),
        ("ID ends 561X ok", "ID ends *** ok"),
        ("ID ends 561x ok", "ID ends *** ok"),
        ("last four 1234", "last four ***"),
        ("I owe 35 yuan", "I owe 35 yuan"),
        ("no digits here", "no digits here"),
    ],
)
def test_mask_text(text: str, expected: str) -> None:
    assert mask_text(text) == expected


@pytest.mark.parametrize("text", ["身份证后四位是561X", "尾号1234"])
def test_mask_text_after_chinese(text: str) -> None:
    assert "561X" not in mask_text(text)
    assert "1234" not in mask_text(text)


def test_masking_filter_masks_a_log_record(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.privacy.masking")
    masking = MaskingFilter()
    logger.addFilter(masking)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("sms from %s, id %s", "+8613800138000", "561X")
    finally:
        logger.removeFilter(masking)

    assert [r.getMessage() for r in caplog.records] == ["sms from ***, id ***"]
    assert "13800138000" not in caplog.text


def test_masking_filter_keeps_the_record() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "to %s", ("+14155550123",), None)

    assert MaskingFilter().filter(record) is True
    assert (record.msg, record.args) == ("to ***", ())
