"""The questions the bot can be waiting on, as the values of the ``awaiting`` slot.

One question at a time: the slot holds which, and ``pending`` what the answer completes.
"""

VERIFICATION = "verification"
PROMISE_DATE = "promise_date"
DATE_MEANING = "date_meaning"
RECORD_CONFIRM = "record_confirm"
HANDOFF_OFFER = "handoff_offer"
MEANING = "meaning"
HARDSHIP_REASON = "hardship_reason"
PLAN_CHOICE = "plan_choice"
PLAN_CONFIRM = "plan_confirm"
GRACE_CONFIRM = "grace_confirm"
VISIT_PLACE = "visit_place"
VISIT_ADDRESS_CONSENT = "visit_address_consent"
VISIT_ADDRESS = "visit_address"
VISIT_TIME = "visit_time"
VISIT_SLOT = "visit_slot"
FAMILY_CONSENT = "family_consent"
FAMILY_CONTACT = "family_contact"
