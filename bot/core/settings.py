"""Settings read once from the environment, validated at start."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class CampaignConfig:
    """A campaign's throughput and timing (CAMPAIGN_* variables)."""

    rate_per_second: int = 10  # per sender number, across all workers; 0: unlimited
    daily_cap: int = 0  # messages and calls per sender number and UTC day; 0: unlimited
    reply_wait: timedelta = timedelta(hours=4)
    job_timeout_seconds: int = 120
    max_jobs: int = 50  # jobs at once per worker process


@dataclass(frozen=True)
class Settings:
    """Everything the processes need from their environment."""

    redis_url: str = field(repr=False)  # may hold a password
    twilio_account_sid: str
    twilio_auth_token: str = field(repr=False)
    twilio_from: str
    twilio_api_base_url: str  # empty: Twilio itself; otherwise the local stand-in
    public_base_url: str
    data_keys: tuple[str, ...] = field(repr=False)
    hmac_secret: bytes = field(repr=False)
    gateway_host: str  # the gateway listens here: loopback unless deployed behind a proxy (compose)
    gateway_port: int
    rasa_url: str  # one Rasa server, or several separated by commas (sharing Redis)
    rasa_token: str = field(repr=False)
    rasa_turns_at_once: int  # per Rasa server, from each gateway; more turns wait at the gateway in order
    action_url: str
    bank_phone: str
    payment_url_template: str
    payment_link_ttl_hours: int
    promise_max_days: int
    visit_reminder_minutes: int  # 0: the gateway does not send day-before visit reminders
    visit_record_retention_days: int  # field visit records and reports are deleted this long after submission
    conversation_retention_days: int  # a conversation (tracker and transcript) after its last turn
    contact_retention_days: int  # contact attempts and contact-policy decisions
    audit_retention_days: int  # the audit stream (who saw or changed what)
    agent_hours: str
    bank_timezone: str  # the bank's own day: a supervisor's "today" in the field console
    agent_phone: str  # empty: no live transfer, callers get a callback
    call_recording: bool
    campaign: CampaignConfig
    sla_file: str = ""  # the desk's reply targets and working hours; empty: policy/sla.yml

    @property
    def bank_zone(self) -> ZoneInfo:
        return ZoneInfo(self.bank_timezone)

    @property
    def rasa_urls(self) -> tuple[str, ...]:
        return tuple(self.rasa_url.split(","))  # each already checked and trimmed by load_settings

    def rasa_for(self, conversation_id: str) -> list[str]:
        """The Rasa servers in the order a conversation prefers them (the same every turn; conversations
        spread over all of them), for ties between equally busy ones and for the tracker API."""
        urls = self.rasa_urls
        first = int(hashlib.blake2b(conversation_id.encode(), digest_size=4).hexdigest(), 16) % len(urls)
        return list(urls[first:] + urls[:first])


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set; see .env.example")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip() or str(default)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingsError(f"{name}={raw!r} must be a whole number from {low} to {high}")
    return int(raw)


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    raw = (env.get(name, "").strip() or default).rstrip("/")
    parsed = urlparse(raw)
    if parsed.scheme not in schemes or not (parsed.netloc or (parsed.scheme == "unix" and parsed.path)):
        raise SettingsError(f"{name}={raw!r} must be a URL starting with {' or '.join(schemes)}://")
    return raw


def _urls(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    """One URL or several separated by commas, each checked as ``_url`` does."""
    raw = env.get(name, "").strip() or default
    return ",".join(_url({name: part}, name, default, schemes) for part in raw.split(",") if part.strip())


def _data_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in _require(env, "DATA_KEYS").split(",") if k.strip())
    if not keys:
        raise SettingsError("DATA_KEYS holds no key; generate one with `python -m bot new-key`")
    for key in keys:
        try:
            if len(base64.urlsafe_b64decode(key.encode())) != 32:
                raise ValueError
        except (ValueError, binascii.Error):
            raise SettingsError(
                "DATA_KEYS must be comma-separated Fernet keys (python -m bot new-key); "
                "the first encrypts, all decrypt"
            ) from None
    return keys


def _hmac_secret(env: Mapping[str, str]) -> bytes:
    secret = _require(env, "HMAC_SECRET")
    if len(secret) < 32:
        raise SettingsError("HMAC_SECRET must be at least 32 characters")
    return secret.encode()


def _payment_template(env: Mapping[str, str]) -> str:
    template = env.get("PAYMENT_URL_TEMPLATE", "").strip() or "https://pay.example-bank.test/p/{token}"
    if "{token}" not in template:
        raise SettingsError("PAYMENT_URL_TEMPLATE must contain {token}")
    return template


def _phone(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not re.fullmatch(r"\+[1-9][0-9]{4,14}", value):
        raise SettingsError(f"{name}={value!r} must be an E.164 number such as +8610955880000")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw not in ("", "0", "1", "true", "false", "yes", "no"):
        raise SettingsError(f"{name}={raw!r} must be true or false")
    return raw in ("1", "true", "yes")


def _zone(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{name}={value!r} must be an IANA time zone such as Asia/Shanghai") from None
    return value


def _campaign(env: Mapping[str, str]) -> CampaignConfig:
    return CampaignConfig(
        rate_per_second=_integer(env, "CAMPAIGN_RATE_PER_SECOND", 10, 0, 10_000),
        daily_cap=_integer(env, "CAMPAIGN_DAILY_CAP", 0, 0, 100_000_000),
        reply_wait=timedelta(minutes=_integer(env, "CAMPAIGN_REPLY_WAIT_MINUTES", 240, 1, 7 * 24 * 60)),
        job_timeout_seconds=_integer(env, "CAMPAIGN_JOB_TIMEOUT_SECONDS", 120, 2, 3600),
        max_jobs=_integer(env, "CAMPAIGN_MAX_JOBS", 50, 1, 10_000),
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings.

    Args:
        env: the environment to read; ``os.environ`` when omitted.

    Raises:
        SettingsError: naming the first missing or malformed variable.
    """
    env = os.environ if env is None else env
    gateway_port = _integer(env, "GATEWAY_PORT", 8080, 1, 65535)
    return Settings(
        redis_url=_url(env, "REDIS_URL", "", ("redis", "rediss", "unix")),
        twilio_account_sid=env.get("TWILIO_ACCOUNT_SID", "").strip() or "AC" + "0" * 32,
        twilio_auth_token=_require(env, "TWILIO_AUTH_TOKEN"),
        twilio_from=_phone(env, "TWILIO_FROM", "+15005550006"),
        twilio_api_base_url=_url(env, "TWILIO_API_BASE_URL", "https://api.twilio.com", ("http", "https")),
        public_base_url=_url(env, "PUBLIC_BASE_URL", f"http://127.0.0.1:{gateway_port}", ("http", "https")),
        data_keys=_data_keys(env),
        hmac_secret=_hmac_secret(env),
        gateway_host=env.get("GATEWAY_HOST", "").strip() or "127.0.0.1",
        gateway_port=gateway_port,
        rasa_url=_urls(env, "RASA_URL", "http://127.0.0.1:5005", ("http", "https")),
        rasa_token=_require(env, "RASA_TOKEN"),
        rasa_turns_at_once=_integer(env, "RASA_TURNS_AT_ONCE", 2, 1, 64),
        action_url=_url(env, "ACTION_SERVER_URL", "http://127.0.0.1:5055", ("http", "https")),
        bank_phone=env.get("BANK_PHONE", "").strip() or "95588",
        payment_url_template=_payment_template(env),
        payment_link_ttl_hours=_integer(env, "PAYMENT_LINK_TTL_HOURS", 72, 1, 720),
        promise_max_days=_integer(env, "PROMISE_MAX_DAYS", 14, 1, 90),
        visit_reminder_minutes=_integer(env, "VISIT_REMINDER_MINUTES", 30, 0, 1440),
        visit_record_retention_days=_integer(env, "VISIT_RECORD_RETENTION_DAYS", 1095, 1, 3650),
        conversation_retention_days=_integer(env, "CONVERSATION_RETENTION_DAYS", 90, 1, 3650),
        # Contact caps count attempts over the last week: keep at least that.
        contact_retention_days=_integer(env, "CONTACT_RETENTION_DAYS", 30, 8, 3650),
        audit_retention_days=_integer(env, "AUDIT_RETENTION_DAYS", 1825, 30, 7300),
        agent_hours=env.get("AGENT_HOURS", "").strip() or "09:00-18:00",
        bank_timezone=_zone(env, "BANK_TIMEZONE", "Asia/Shanghai"),
        agent_phone=_phone(env, "AGENT_PHONE", "") if env.get("AGENT_PHONE", "").strip() else "",
        call_recording=_flag(env, "CALL_RECORDING"),
        campaign=_campaign(env),
        sla_file=env.get("SLA_FILE", "").strip(),
    )
