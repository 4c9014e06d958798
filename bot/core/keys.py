"""Redis key names, in one place. None of them holds personal data."""

ACCOUNT_IDS = "ledger:accounts"
HANDOFF_QUEUE = "handoff:queue"
REVIEW_NUMBERS = "review:numbers"
AUDIT_STREAM = "audit:events"
CONTACT_DECISIONS = "contact:decisions"


def account(account_id: str) -> str:
    return f"ledger:acct:{account_id}"


def account_by_pseudonym(conversation_id: str) -> str:
    return f"ledger:pseudo:{conversation_id}"


def opt_out(conversation_id: str) -> str:
    return f"contact:optout:{conversation_id}"


def hold(account_id: str) -> str:
    return f"contact:hold:{account_id}"


def promise(account_id: str) -> str:
    return f"ledger:promise:{account_id}"


def paid_claim(account_id: str) -> str:
    return f"ledger:paidclaim:{account_id}"


def handoff(conversation_id: str) -> str:
    return f"handoff:item:{conversation_id}"


def webhook_seen(message_sid: str) -> str:
    return f"webhook:sms:{message_sid}"


def verification_failures(account_id: str) -> str:
    return f"verify:failures:{account_id}"


def disclosure_block(conversation_id: str) -> str:
    return f"verify:blocked:{conversation_id}"


def language(conversation_id: str) -> str:
    return f"conversation:language:{conversation_id}"


def contact_attempts(account_id: str) -> str:
    return f"contact:attempts:{account_id}"


def contact_attempt_times(account_id: str) -> str:
    return f"contact:attempt-times:{account_id}"


def outbox(key: str) -> str:
    return f"outbox:{key}"


def contact_status(sid: str) -> str:
    return f"contact:status:{sid}"


def last_said(call_sid: str) -> str:
    return f"voice:last:{call_sid}"


def call_sms_count(call_sid: str) -> str:
    return f"voice:sms-count:{call_sid}"


def outbound_lock(account_id: str) -> str:
    return f"lock:outbound:{account_id}"


def arrangement(account_id: str) -> str:
    return f"arrangement:current:{account_id}"


def arrangement_history(account_id: str) -> str:
    return f"arrangement:history:{account_id}"


def arrangement_offers(conversation_id: str) -> str:
    return f"arrangement:offers:{conversation_id}"


def hardship_reason(account_id: str) -> str:
    return f"hardship:reason:{account_id}"


def consent(account_id: str) -> str:
    return f"consent:{account_id}"


def family_contact(account_id: str) -> str:
    return f"family:contact:{account_id}"


def visit_draft(conversation_id: str) -> str:
    return f"visit:draft:{conversation_id}"


def visit_slot(slot_id: str) -> str:
    return f"visit:slot:{slot_id}"


def visit_holds(conversation_id: str) -> str:
    return f"visit:holds:{conversation_id}"


def visit_booking(booking_id: str) -> str:
    return f"visit:booking:{booking_id}"


def visit_account(account_id: str) -> str:
    return f"visit:account:{account_id}"


def visit_day(day: str) -> str:
    return f"visit:day:{day}"


def keys_answer(call_sid: str) -> str:
    return f"voice:keys-answer:{call_sid}"


def last_reply(account_id: str) -> str:
    """Epoch seconds of the borrower's last inbound SMS (campaigns call only those who did not reply)."""
    return f"contact:last-reply:{account_id}"


CAMPAIGNS = "campaign:index"


def campaign(campaign_id: str) -> str:
    return f"campaign:meta:{campaign_id}"


def campaign_contacts(campaign_id: str) -> str:
    """Hash ``<account_id>:<kind>`` -> the contact's state, reason, sid and time (JSON)."""
    return f"campaign:contacts:{campaign_id}"


def campaign_rate(sender: str, epoch_second: int) -> str:
    """Messages a sender number was given in one second, across all workers (the bank's number)."""
    return f"campaign:rate:{sender}:{epoch_second}"


def campaign_daily(sender: str, day: str) -> str:
    return f"campaign:daily:{sender}:{day}"


def agent_outcomes(account_id: str) -> str:
    """Newest first: how agents closed the account's handed-off conversations (sealed JSON)."""
    return f"agent:outcomes:{account_id}"


# --- the agent console ---------------------------------------------------------------------------

AGENTS = "agent:usernames"
HANDOFF_HELD = "handoff:held"
# Pub/sub channel: what changed (a conversation id and a kind, never a message), for live pages.
CONSOLE_EVENTS = "console:events"
# Stream: replies that came after their service-level target (bot.domain.sla.breach_record).
SLA_BREACHES = "sla:breaches"


def agent(username: str) -> str:
    return f"agent:user:{username}"


# Set: the agents on shift now, to whom new hand-offs are offered (bot.domain.assignment).
ON_SHIFT = "agent:on-shift"
ASSIGN_LOCK = "lock:assign"


def agent_session(token_digest: str) -> str:
    return f"agent:session:{token_digest}"


def login_failures(kind: str, digest: str) -> str:
    """Failed logins in the window, per username or client address (both hashed)."""
    return f"agent:login-failures:{kind}:{digest}"


def login_locked(kind: str, digest: str) -> str:
    """Set while that username's or address's lock has been audited (so it is audited once)."""
    return f"agent:login-locked:{kind}:{digest}"


def tracker_archive(conversation_id: str) -> str:
    """Every event of the conversation, sealed, appended by bot.rasa_ext.tracker_store (the transcript)."""
    return f"tracker:archive:{conversation_id}"


def tracker(conversation_id: str) -> str:
    """The live Rasa tracker, sealed (bot.rasa_ext.tracker_store)."""
    return f"tracker:{conversation_id}"


def route_lock(conversation_id: str) -> str:
    """Held while an inbound SMS is routed to an agent, and while an agent lets the conversation go."""
    return f"lock:route:{conversation_id}"


def field_visit(booking_id: str) -> str:
    return f"fieldvisit:{booking_id}"


def field_visit_addenda(booking_id: str) -> str:
    return f"fieldvisit:addenda:{booking_id}"


def field_visit_report(booking_id: str) -> str:
    return f"fieldvisit:report:{booking_id}"


def field_visit_outcomes(account_id: str) -> str:
    return f"fieldvisit:outcomes:{account_id}"


TURNS_WAITING = "turns:waiting"


def turn_order(conversation_id: str) -> str:
    """The line of a conversation's messages being answered now (bot/domain/turns.py)."""
    return f"turns:order:{conversation_id}"


def turn_leases(conversation_id: str) -> str:
    return f"turns:lease:{conversation_id}"


def turns_pending(conversation_id: str) -> str:
    """A conversation's messages Rasa has not taken yet, sealed, oldest first."""
    return f"turns:pending:{conversation_id}"


def console_viewers(conversation_id: str) -> str:
    """Who has the conversation's console page open: username -> role, with a last-seen time each."""
    return f"console:viewers:{conversation_id}"
