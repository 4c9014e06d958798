"""Asking for a family contact (核对家属信息), only with consent on record.

The bot explains the purpose first and stores nothing unless the borrower says
yes to that exact wording, which is kept with the consent. Family contacts are
third parties: they are never told about the debt, and no code here or in
outbound contacts them about it.
"""

from __future__ import annotations

from bot.dialogue import cues, questions
from bot.dialogue.conversation import DONE, LEAVING_INTENTS, SlotChange, Turn, opt_out, record_consent_answer
from bot.domain.consent import ConsentMissing, FamilyContact, read_phone

ANSWER_INTENTS = {"inform", "nlu_fallback", "affirm", "deny", "out_of_scope"}
# "我同意你们保存我妈的电话" reads like a withdrawal to the classifier: while we ask, it is no answer.
UNCLEAR_INTENTS = {"withdraw_consent", "book_visit"}


async def ask_consent_once(turn: Turn) -> list[SlotChange]:
    """Ask for consent to keep a family contact, unless the borrower already answered once."""
    if await turn.services.consents.get(turn.account.account_id, "family_contact") is not None:
        return list(DONE)
    turn.say("utter_ask_family_consent")
    return [("awaiting", questions.FAMILY_CONSENT), ("pending", None)]


async def answer_consent(turn: Turn) -> list[SlotChange] | None:
    """Yes records the consent and asks for the contact; no records the refusal and stores nothing."""
    if turn.intent not in ANSWER_INTENTS | UNCLEAR_INTENTS:
        return None
    if turn.intent in ("affirm", "deny"):
        await record_consent_answer(turn, "family_contact", "utter_ask_family_consent")
    if turn.intent == "affirm":
        turn.say("utter_ask_family_contact")
        return [("awaiting", questions.FAMILY_CONTACT), ("pending", None)]
    if turn.intent == "deny":
        turn.say("utter_family_consent_declined")
        return list(DONE)
    turn.say("utter_ask_family_consent")  # a contact before a yes is not consent: ask again
    return []


async def answer_contact(turn: Turn) -> list[SlotChange] | None:
    """Store the name and number given, under the consent just granted."""
    found = read_phone(turn.text)
    if turn.intent in LEAVING_INTENTS or (found is None and turn.intent not in ANSWER_INTENTS):
        return None
    if found is None:
        if turn.intent == "deny":
            turn.say("utter_family_contact_skipped")
            return list(DONE)
        turn.say("utter_family_contact_unclear")
        return []
    contact = FamilyContact(*found)
    try:
        await turn.services.consents.save_family_contact(turn.account.account_id, contact)
    except ConsentMissing:
        return await ask_consent_once(turn)
    turn.say("utter_family_contact_saved", masked_phone=contact.masked_phone)
    return list(DONE)


async def withdraw(turn: Turn) -> list[SlotChange]:
    """Withdraw the family-contact consent and delete the contact; a withdrawal that also says "don't contact
    me" ("我撤回同意，不要再联系我") is an opt-out too: revoking by any words that say it counts."""
    withdrawn = await turn.services.consents.withdraw(turn.account.account_id, "family_contact",
                                                      turn.conversation_id, turn.channel)
    turn.say("utter_consent_withdrawn" if withdrawn else "utter_no_consent_on_record")
    if cues.says("stop_contact", turn.text):
        await opt_out(turn)
    return list(DONE)
