""""What did I agree to?": what this account has on record, told to the verified borrower.

The promise to pay, the accepted plan or grace period, and the booked visit, from the same stores
the agents' account view reads; nothing on record is said as such, not guessed at.
"""

from __future__ import annotations

from datetime import date

from bot.dialogue import cues
from bot.dialogue.conversation import DONE, SlotChange, Turn
from bot.dialogue.visits import slot_when
from bot.domain.plans import Offer


def is_question(text: str) -> bool:
    return cues.says("on_record_question", text)


async def tell(turn: Turn) -> list[SlotChange]:
    """Say each record this account holds (a verified borrower's), or that there is none."""
    account_id = turn.account.account_id
    told = False
    promise = await turn.services.records.get_promise(account_id)
    if promise:
        turn.say("utter_on_record_promise", amount=turn.money(promise["amount"]),
                 promise_date=turn.date(date.fromisoformat(promise["date"])))
        told = True
    arrangement = await turn.services.arrangements.current(account_id)
    if arrangement:
        offer = Offer.from_record(arrangement["offer"])
        if offer.kind == "plan":
            turn.say("utter_on_record_plan", count=offer.count, total=turn.money(offer.total),
                     first_due=turn.date(offer.schedule[0].due))
        else:
            turn.say("utter_on_record_grace", total=turn.money(offer.total), until=turn.date(offer.schedule[-1].due))
        told = True
    booking = await turn.services.bookings.booking_for(account_id)
    if booking:
        turn.say("utter_on_record_visit", **slot_when(booking.slot, turn.account, turn.language))
        told = True
    if not told:
        turn.say("utter_on_record_nothing")
    return list(DONE)
