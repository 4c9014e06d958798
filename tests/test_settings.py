"""Tests for bot.core.settings: reading and validating the environment."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet

from bot.core.settings import CampaignConfig, Settings, SettingsError, load_settings
from tests.conftest import make_env

REDIS_URL = "redis://127.0.0.1:6379/0"
REQUIRED = ("REDIS_URL", "TWILIO_AUTH_TOKEN", "DATA_KEYS", "HMAC_SECRET", "RASA_TOKEN")


def env_without(name: str) -> dict[str, str]:
    env = make_env(REDIS_URL)
    del env[name]
    return env


def test_complete_env_loads() -> None:
    env = make_env(REDIS_URL)

    settings = load_settings(env)

    assert isinstance(settings, Settings)
    assert settings.redis_url == REDIS_URL
    assert settings.twilio_auth_token == env["TWILIO_AUTH_TOKEN"]
    assert settings.data_keys == (env["DATA_KEYS"],)
    assert settings.hmac_secret == env["HMAC_SECRET"].encode()
    assert settings.rasa_token == "test-rasa-token"
    assert settings.public_base_url == "https://bot.example-bank.test"
    assert settings.bank_phone == "95588"


def test_defaults() -> None:
    settings = load_settings(make_env(REDIS_URL))

    assert settings.gateway_port == 8080
    assert settings.twilio_from == "+15005550006"
    assert settings.rasa_url == "http://127.0.0.1:5005"
    assert settings.action_url == "http://127.0.0.1:5055"
    assert settings.payment_url_template == "https://pay.example-bank.test/p/{token}"
    assert (settings.payment_link_ttl_hours, settings.promise_max_days) == (72, 14)
    assert settings.agent_hours == "09:00-18:00"
    assert settings.bank_zone == ZoneInfo("Asia/Shanghai")
    assert settings.campaign == CampaignConfig(rate_per_second=10, daily_cap=0, reply_wait=timedelta(hours=4),
                                               job_timeout_seconds=120, max_jobs=50)


def test_overrides() -> None:
    settings = load_settings(
        make_env(REDIS_URL, GATEWAY_PORT="9090", TWILIO_FROM="+8610955880000", PUBLIC_BASE_URL="https://x.test/")
    )

    assert (settings.gateway_port, settings.twilio_from, settings.public_base_url) == (
        9090, "+8610955880000", "https://x.test",
    )


def test_campaign_and_bank_zone_overrides() -> None:
    settings = load_settings(make_env(REDIS_URL, CAMPAIGN_REPLY_WAIT_MINUTES="90", CAMPAIGN_DAILY_CAP="500",
                                      BANK_TIMEZONE="Asia/Hong_Kong"))

    assert (settings.campaign.reply_wait, settings.campaign.daily_cap) == (timedelta(minutes=90), 500)
    assert settings.bank_zone == ZoneInfo("Asia/Hong_Kong")


def test_several_data_keys() -> None:
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    settings = load_settings(make_env(REDIS_URL, DATA_KEYS=f"{first}, {second}"))

    assert settings.data_keys == (first, second)


def test_public_base_url_defaults_to_the_gateway_port() -> None:
    env = make_env(REDIS_URL, GATEWAY_PORT="9090")
    del env["PUBLIC_BASE_URL"]

    assert load_settings(env).public_base_url == "http://127.0.0.1:9090"


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_required_variable(name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(env_without(name))


@pytest.mark.parametrize("name", REQUIRED)
def test_blank_required_variable(name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(make_env(REDIS_URL, **{name: "   "}))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_PORT", "abc"),
        ("GATEWAY_PORT", "70000"),
        ("GATEWAY_PORT", "0"),
        ("GATEWAY_PORT", "-1"),
        ("REDIS_URL", "http://x"),
        ("REDIS_URL", "localhost:6379"),
        ("DATA_KEYS", "notakey"),
        ("DATA_KEYS", Fernet.generate_key().decode()[:-4]),
        ("HMAC_SECRET", "short"),
        ("HMAC_SECRET", "x" * 31),
        ("PAYMENT_URL_TEMPLATE", "https://pay.example-bank.test/p/"),
        ("TWILIO_FROM", "13800138000"),
        ("TWILIO_FROM", "+0123456789"),
        ("PUBLIC_BASE_URL", "bot.example-bank.test"),
        ("RASA_URL", "ftp://rasa"),
        ("PAYMENT_LINK_TTL_HOURS", "721"),
        ("PROMISE_MAX_DAYS", "91"),
        ("RASA_TURNS_AT_ONCE", "0"),
        ("RASA_TURNS_AT_ONCE", "two"),
        ("CAMPAIGN_RATE_PER_SECOND", "fast"),
        ("CAMPAIGN_JOB_TIMEOUT_SECONDS", "1"),
        ("BANK_TIMEZONE", "China/Beijing"),
        ("BANK_TIMEZONE", "../etc/passwd"),
    ],
)
def test_malformed_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(make_env(REDIS_URL, **{name: value}))


def test_hmac_secret_of_32_characters_is_enough() -> None:
    assert load_settings(make_env(REDIS_URL, HMAC_SECRET="x" * 32)).hmac_secret == b"x" * 32


def test_rasa_takes_two_turns_at_once_from_a_gateway_unless_told_otherwise() -> None:
    assert load_settings(make_env(REDIS_URL)).rasa_turns_at_once == 2
    assert load_settings(make_env(REDIS_URL, RASA_TURNS_AT_ONCE="64")).rasa_turns_at_once == 64


def test_port_bounds_are_inclusive() -> None:
    assert load_settings(make_env(REDIS_URL, GATEWAY_PORT="65535")).gateway_port == 65535
    assert load_settings(make_env(REDIS_URL, GATEWAY_PORT="1")).gateway_port == 1


def test_data_keys_of_only_commas_is_refused() -> None:
    with pytest.raises(SettingsError, match="DATA_KEYS"):
        load_settings(make_env(REDIS_URL, DATA_KEYS=" , "))


def test_unix_socket_redis_url_is_accepted() -> None:
    settings = load_settings(make_env(REDIS_URL, REDIS_URL="unix:///var/run/redis/redis.sock"))

    assert settings.redis_url == "unix:///var/run/redis/redis.sock"


def test_repr_hides_the_secrets() -> None:
    env = make_env(REDIS_URL)

    text = repr(load_settings(env))

    for name in ("TWILIO_AUTH_TOKEN", "DATA_KEYS", "HMAC_SECRET", "RASA_TOKEN"):
        assert env[name] not in text
    assert "hmac_secret" not in text
    assert REDIS_URL not in text


def test_repr_hides_a_redis_password() -> None:
    settings = load_settings(make_env(REDIS_URL, REDIS_URL="rediss://:s3cret-redis-pass@redis.internal:6380/0"))

    assert "s3cret-redis-pass" not in repr(settings)
