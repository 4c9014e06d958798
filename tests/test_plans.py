"""Tests for bot.domain.plans: policy validation, exact schedules, buckets, offers and amounts in free text.

Known answers pin the arithmetic (half-up rounding, the last instalment absorbing the
remainder, month-end dates); hypothesis checks the invariants over random totals.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.ledger import PRODUCTS, Account, Installment
from bot.domain.plans import (
    PLANS_FILE,
    Instalment,
    Offer,
    PolicyError,
    bucket,
    days_past_due,
    grace_offer,
    load_plan_policy,
    max_grace_days,
    plan_offers,
    read_amount,
    schedule,
    shortest_affordable,
)

POLICY = load_plan_policy()
CONSUMER = POLICY["consumer"]
TODAY = date(2026, 5, 20)
D = Decimal
CENT = D("0.01")
UNITS = {"CNY": CENT, "USD": CENT, "JPY": D(1)}
deterministic = settings(max_examples=200, derandomize=True, deadline=None)


def _amounts(instalments: tuple[Instalment, ...]) -> list[Decimal]:
    return [i.amount for i in instalments]


def _dues(instalments: tuple[Instalment, ...]) -> list[date]:
    return [i.due for i in instalments]


# --- the policy file ---------------------------------------------------------------------------


def test_the_policy_file_covers_every_product() -> None:
    assert set(POLICY) == set(PRODUCTS)
    assert CONSUMER.instalment_counts == (3, 6, 12)
    assert CONSUMER.fee_percent == D("2.0")
    assert CONSUMER.grace_days_by_bucket == {"1-30": 15, "31-60": 10, "61-90": 7, "90+": 0}
    assert POLICY["credit_card"].instalment_counts == (3, 6, 12, 24)


_DELETE = object()


def _broken_policy(tmp_path: Path, dotted: str, value: Any) -> Path:
    """The real policy with one value changed (or deleted), written to a file of its own."""
    config = yaml.safe_load(PLANS_FILE.read_text(encoding="utf-8"))
    *parents, last = dotted.split(".")
    target = config
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    path = tmp_path / "plans.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(("dotted", "value", "message"), [
    ("products.consumer.instalment_counts", [1, 3],
     "consumer.instalment_counts: must be a list of distinct whole numbers ≥ 2"),
    ("products.consumer.instalment_counts", [3, 3], "consumer.instalment_counts: must be a list of distinct"),
    ("products.consumer.instalment_counts", [], "consumer.instalment_counts: must be a list of distinct"),
    ("products.auto.instalment_counts", ["3", 6], "auto.instalment_counts: must be a list of distinct"),
    ("products.consumer.fee_percent", 2.0, "consumer.fee_percent: must be a non-negative decimal written as a string"),
    ("products.consumer.fee_percent", "-1", "consumer.fee_percent: must be a non-negative decimal"),
    ("products.mortgage.monthly_interest_percent", "0.4%", "mortgage.monthly_interest_percent: must be"),
    ("products.auto", _DELETE, "products: lacks auto"),
    ("products.personal_loan", {}, "products: has unknown key(s) personal_loan"),
    ("products.consumer.grace_days", 5, "consumer: has unknown key(s) grace_days"),
    ("products.consumer.plans_per_year", _DELETE, "consumer: lacks plans_per_year"),
    ("products.consumer.plans_per_year", "two", "consumer.plans_per_year: must be a whole number ≥ 0"),
    ("products.consumer.grace_per_year", True, "consumer.grace_per_year: must be a whole number ≥ 0"),
    ("products.consumer.first_due_days", 0, "consumer.first_due_days: must be a whole number ≥ 1"),
    ("products.consumer.grace_days_by_bucket.90+", _DELETE, "consumer.grace_days_by_bucket: lacks 90+"),
    ("products.credit_card.grace_days_by_bucket.1-30", -1,
     "credit_card.grace_days_by_bucket.1-30: must be a whole number ≥ 0"),
    ("products.consumer.min_first_payment.percent", "150", "consumer.min_first_payment.percent: must be at most 100"),
    ("products.consumer.min_first_payment.at_least", _DELETE, "consumer.min_first_payment: lacks at_least"),
    ("products.consumer.min_first_payment", "10%", "consumer.min_first_payment: must be a mapping"),
    ("rounding", "ROUND_HALF_EVEN", "rounding: must be ROUND_HALF_UP"),
    ("rounding", _DELETE, "top level: lacks rounding"),
    ("extra", 1, "top level: has unknown key(s) extra"),
])
def test_a_broken_policy_is_rejected_naming_the_field(tmp_path: Path, dotted: str, value: Any, message: str) -> None:
    path = _broken_policy(tmp_path, dotted, value)
    with pytest.raises(PolicyError) as error:
        load_plan_policy(path)
    assert str(error.value).startswith(f"{path}: {message}")


def test_a_policy_that_is_not_yaml_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "plans.yml"
    path.write_text("products: [unclosed", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_plan_policy(path)


def test_instalment_counts_are_sorted_on_load(tmp_path: Path) -> None:
    policy = load_plan_policy(_broken_policy(tmp_path, "products.auto.instalment_counts", [9, 3, 6]))
    assert policy["auto"].instalment_counts == (3, 6, 9)


# --- schedules ---------------------------------------------------------------------------------


def test_consumer_plan_over_three_months_has_the_known_schedule() -> None:
    three = plan_offers(CONSUMER, D("3750.00"), "CNY", TODAY, plans_last_year=0)[0]
    assert (three.kind, three.count) == ("plan", 3)
    assert (three.principal, three.fee, three.interest) == (D("3750.00"), D("75.00"), D("112.50"))
    assert _amounts(three.schedule) == [D("1312.50")] * 3
    assert _dues(three.schedule) == [date(2026, 5, 27), date(2026, 6, 27), date(2026, 7, 27)]
    assert three.total == D("3937.50")


def test_the_last_instalment_absorbs_the_remainder() -> None:
    instalments = schedule(D("1000.00"), 3, TODAY, "CNY", D(0))
    assert _amounts(instalments) == [D("333.33"), D("333.33"), D("333.34")]


def test_instalments_are_rounded_half_up_not_to_even() -> None:
    assert _amounts(schedule(D("100.05"), 2, TODAY, "CNY", D(0))) == [D("50.03"), D("50.02")]


def test_yen_has_no_decimals() -> None:
    assert _amounts(schedule(D("10000"), 3, TODAY, "JPY", D(0))) == [D(3333), D(3333), D(3334)]
    offers = plan_offers(CONSUMER, D("100000"), "JPY", TODAY, plans_last_year=0)
    assert all(i.amount == i.amount.to_integral_value() for o in offers for i in o.schedule)
    assert (offers[0].fee, offers[0].interest) == (D(2000), D(3000))


def test_dates_move_to_the_end_of_shorter_months() -> None:
    assert _dues(schedule(D("400.00"), 4, date(2026, 1, 31), "CNY", D(0))) == [
        date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]
    assert _dues(schedule(D("200.00"), 2, date(2028, 1, 31), "CNY", D(0)))[1] == date(2028, 2, 29)
    assert _dues(schedule(D("300.00"), 3, date(2026, 12, 30), "CNY", D(0))) == [
        date(2026, 12, 30), date(2027, 1, 30), date(2027, 2, 28)]


def test_a_minimum_first_payment_replaces_a_smaller_equal_one() -> None:
    instalments = schedule(D("1000.00"), 4, TODAY, "CNY", D("400.001"))
    assert _amounts(instalments) == [D("400.01"), D("200.00"), D("200.00"), D("199.99")]


def test_the_consumer_twelve_month_plan_starts_with_ten_percent() -> None:
    twelve = plan_offers(CONSUMER, D("3750.00"), "CNY", TODAY, plans_last_year=0)[-1]
    assert twelve.total == D("4275.00")
    assert _amounts(twelve.schedule) == [D("427.50")] + [D("349.77")] * 10 + [D("349.80")]
    assert (twelve.regular, twelve.largest) == (D("349.77"), D("427.50"))
    assert (twelve.first_due, twelve.last_due) == (date(2026, 5, 27), date(2027, 4, 27))


@pytest.mark.parametrize(("total", "count", "currency", "min_first"), [
    (D("100.00"), 3, "CNY", D("100.00")),  # the minimum takes it all
    (D("100.00"), 3, "CNY", D("150")),
    (D("0.10"), 6, "CNY", D(0)),  # 0.02 x 5 leaves nothing for the last
    (D("0.02"), 3, "CNY", D(0)),
    (D("100.005"), 2, "CNY", D(0)),  # finer than a fen
    (D("100.5"), 2, "JPY", D(0)),
    (D("0"), 1, "CNY", D(0)),
    (D("100.00"), 0, "CNY", D(0)),
])
def test_an_impossible_schedule_raises(total: Decimal, count: int, currency: str, min_first: Decimal) -> None:
    with pytest.raises(ValueError):
        schedule(total, count, TODAY, currency, min_first)


def test_a_single_instalment_is_the_whole_total_whatever_the_minimum() -> None:
    assert _amounts(schedule(D("80.00"), 1, TODAY, "CNY", D("100"))) == [D("80.00")]


@st.composite
def schedule_inputs(draw: st.DrawFn) -> tuple[Decimal, int, date, str, Decimal]:
    currency = draw(st.sampled_from(sorted(UNITS)))
    unit = UNITS[currency]
    total = draw(st.integers(1, 1_000_000_000)) * unit  # up to 10,000,000.00 in fen or cents
    count = draw(st.integers(1, 36))
    share = draw(st.decimals(min_value=0, max_value=D("1.2"), places=3))
    first_due = draw(st.dates(min_value=date(2024, 1, 1), max_value=date(2032, 12, 31)))
    return total, count, first_due, currency, total * share


@deterministic
@given(schedule_inputs())
def test_a_schedule_sums_exactly_and_runs_monthly(inputs: tuple[Decimal, int, date, str, Decimal]) -> None:
    total, count, first_due, currency, min_first = inputs
    unit = UNITS[currency]
    try:
        instalments = schedule(total, count, first_due, currency, min_first)
    except ValueError:
        # Only tiny totals (a few minor units per instalment) or a minimum near the total fail.
        assert total < unit * count**2 or min_first > total / 2
        return
    amounts, dues = _amounts(instalments), _dues(instalments)
    assert len(instalments) == count
    assert sum(amounts) == total
    assert all(a > 0 and a == a.quantize(unit) for a in amounts)
    first = min_first.quantize(unit, rounding=ROUND_CEILING)
    assert len(set(amounts[:-1])) <= 1 or (amounts[0] == first and len(set(amounts[1:-1])) <= 1)
    if count > 1:
        assert amounts[0] >= min_first
    if count > 2:  # the last differs from the regular amount only by the rounding of the others
        assert abs(amounts[-1] - amounts[-2]) < unit * count
    assert all(a < b for a, b in zip(dues, dues[1:], strict=False))
    for n, due in enumerate(dues):
        assert (due.year * 12 + due.month) - (first_due.year * 12 + first_due.month) == n
        assert due.day == first_due.day or due.day < first_due.day and (due + timedelta(days=1)).day == 1


# --- days past due and buckets -----------------------------------------------------------------


def _account(*installments: Installment) -> Account:
    return Account(account_id="CN001", name="张伟", phone="+8613800138000", language="zh", timezone="Asia/Shanghai",
                   product="consumer", currency="CNY", id_last4="1234", birth_date=date(1985, 3, 1),
                   installments=installments)


def _installment(no: int, due: date, paid: str = "0") -> Installment:
    return Installment(no, due, D("1000.00"), D(paid), TODAY if D(paid) else None)


def test_days_past_due_counts_from_the_oldest_unpaid_instalment() -> None:
    account = _account(
        _installment(1, TODAY - timedelta(days=75), paid="1000.00"),
        _installment(2, TODAY - timedelta(days=45), paid="400.00"),
        _installment(3, TODAY - timedelta(days=14)),
        _installment(4, TODAY),
    )
    assert days_past_due(account, TODAY) == 45


def test_nothing_overdue_is_zero_days_past_due() -> None:
    assert days_past_due(_account(), TODAY) == 0
    assert days_past_due(_account(_installment(1, TODAY)), TODAY) == 0
    assert days_past_due(_account(_installment(1, TODAY - timedelta(days=1))), TODAY) == 1


@pytest.mark.parametrize(("dpd", "name", "grace"), [
    (0, "current", 0), (1, "1-30", 15), (30, "1-30", 15), (31, "31-60", 10), (60, "31-60", 10),
    (61, "61-90", 7), (90, "61-90", 7), (91, "90+", 0), (900, "90+", 0),
])
def test_bucket_edges(dpd: int, name: str, grace: int) -> None:
    assert bucket(dpd) == name
    assert max_grace_days(CONSUMER, dpd) == grace


def test_negative_days_past_due_is_a_bug() -> None:
    with pytest.raises(ValueError):
        bucket(-1)


# --- offers ------------------------------------------------------------------------------------


def test_one_plan_per_allowed_count_fewest_first() -> None:
    offers = plan_offers(CONSUMER, D("3750.00"), "CNY", TODAY, plans_last_year=0)
    assert [o.count for o in offers] == [3, 6, 12]
    assert [o.regular for o in offers] == [D("1312.50"), D("675.00"), D("349.77")]


def test_no_plan_once_the_yearly_limit_is_reached_or_nothing_is_owed() -> None:
    assert plan_offers(CONSUMER, D("3750.00"), "CNY", TODAY, plans_last_year=2) == []
    assert plan_offers(CONSUMER, D("0.00"), "CNY", TODAY, plans_last_year=0) == []
    assert plan_offers(CONSUMER, D("80.00"), "CNY", TODAY, plans_last_year=0) == []  # below the 100 minimum


def test_counts_that_cannot_be_scheduled_are_left_out() -> None:
    policy = replace(CONSUMER, instalment_counts=(2, 6), fee_percent=D(0), monthly_interest_percent=D(0),
                     min_first_percent=D(0), min_first_at_least=D(0))
    assert [o.count for o in plan_offers(policy, D("0.10"), "CNY", TODAY, plans_last_year=0)] == [2]


def test_an_amount_finer_than_the_currency_is_a_bug() -> None:
    with pytest.raises(ValueError, match="more decimals than JPY"):
        plan_offers(CONSUMER, D("100.50"), "JPY", TODAY, plans_last_year=0)


def test_grace_runs_to_the_buckets_limit_or_the_day_asked_for() -> None:
    longest = grace_offer(CONSUMER, D("1250.00"), "CNY", 10, TODAY, graces_last_year=0)
    assert longest is not None
    assert (longest.kind, longest.count, longest.total) == ("grace", 1, D("1250.00"))
    assert longest.first_due == TODAY + timedelta(days=15)
    asked = grace_offer(CONSUMER, D("1250.00"), "CNY", 40, TODAY, 1, until=TODAY + timedelta(days=10))
    assert asked is not None and asked.first_due == TODAY + timedelta(days=10)


@pytest.mark.parametrize(("dpd", "graces", "until"), [
    (0, 0, None),  # nothing is late
    (95, 0, None),  # no grace past 90 days
    (10, 2, None),  # both of this year's grace periods used
    (10, 0, TODAY),  # not later than now
    (10, 0, TODAY + timedelta(days=16)),  # beyond the 15 days allowed
    (40, 0, TODAY + timedelta(days=11)),  # beyond the 10 days allowed
])
def test_no_grace_outside_the_policy(dpd: int, graces: int, until: date | None) -> None:
    assert grace_offer(CONSUMER, D("1250.00"), "CNY", dpd, TODAY, graces, until=until) is None


def test_the_shortest_plan_within_the_monthly_budget() -> None:
    offers = plan_offers(CONSUMER, D("3750.00"), "CNY", TODAY, plans_last_year=0)
    budgets = ["5000", "1312.50", "1312.49", "700", "427.50", "400"]
    chosen = [shortest_affordable(offers, D(budget)) for budget in budgets]
    # Largest instalments are 1312.50, 675.00 and 427.50 (the 12-month plan's first payment).
    assert [offer.count if offer else None for offer in chosen] == [3, 3, 6, 6, 12, None]
    assert shortest_affordable([], D("1000")) is None


def test_an_offer_survives_a_round_trip_through_json() -> None:
    for offer in plan_offers(CONSUMER, D("3750.00"), "CNY", TODAY, plans_last_year=0):
        assert Offer.from_record(json.loads(json.dumps(offer.to_record()))) == offer
    record = plan_offers(CONSUMER, D("3750.00"), "CNY", TODAY, plans_last_year=0)[0].to_record()
    assert record["schedule"][0] == {"due": "2026-05-27", "amount": "1312.50"}
    record["schedule"][0]["amount"] = "1300.00"
    with pytest.raises(ValueError, match="not principal"):
        Offer.from_record(record)


@deterministic
@given(product=st.sampled_from(PRODUCTS), cents=st.integers(0, 1_000_000_000), plans=st.integers(0, 4),
       today=st.dates(min_value=date(2025, 1, 1), max_value=date(2030, 12, 31)))
def test_plan_offers_stay_within_the_policy(product: str, cents: int, plans: int, today: date) -> None:
    policy = POLICY[product]
    amount = cents * CENT
    offers = plan_offers(policy, amount, "CNY", today, plans)
    if plans >= policy.plans_per_year:
        assert offers == []
    counts = [o.count for o in offers]
    assert counts == sorted(counts) and set(counts) <= set(policy.instalment_counts)
    for offer in offers:
        assert offer.principal == amount
        assert offer.total == amount + offer.fee + offer.interest
        assert offer.first_due == today + timedelta(days=policy.first_due_days)
        assert offer.schedule[0].amount >= policy.min_first(offer.total)


@deterministic
@given(product=st.sampled_from(PRODUCTS), dpd=st.integers(0, 400), graces=st.integers(0, 4),
       ask=st.one_of(st.none(), st.integers(-5, 40)))
def test_grace_never_exceeds_the_buckets_days(product: str, dpd: int, graces: int, ask: int | None) -> None:
    policy = POLICY[product]
    until = None if ask is None else TODAY + timedelta(days=ask)
    offer = grace_offer(policy, D("500.00"), "CNY", dpd, TODAY, graces, until=until)
    if offer is None:
        return
    assert graces < policy.grace_per_year
    assert 1 <= (offer.first_due - TODAY).days <= max_grace_days(policy, dpd)
    assert offer.total == D("500.00")


# --- amounts in borrowers' words ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "amount"), [
    ("我每月只能还800", "800"),
    ("每个月八百块", "800"),
    ("一个月能还1500元", "1500"),
    ("最多两千", "2000"),
    ("一千五", "1500"),
    ("两千五百块", "2500"),
    ("三万", "30000"),
    ("两万五", "25000"),
    ("八百五一个月", "850"),
    ("一百零五块", "105"),
    ("￥８００", "800"),
    ("1.5万", "15000"),
    ("我欠3000，每月能还500", "500"),  # the per-month amount, not the debt
    ("我工资每月3000，只能还500", "500"),  # not the salary
    ("分6期，每期500", "500"),
    ("下个月15号还3000", "3000"),
    ("下午3点还2000", "2000"),
    ("十一月还五百", "500"),
    ("I can do $150 a month", "150"),
    ("150/month", "150"),
    ("maybe 1,200 bucks monthly", "1200"),
    ("1.5k", "1500"),
    ("$99.50", "99.50"),
    ("three hundred dollars", "300"),
    ("fifteen hundred a month", "1500"),
    ("I owe 3000 and can pay 150 a month", "150"),
    ("I can pay 300 on the 15th", "300"),
    ("I can pay 200 now and the rest over 6 months", "200"),
    ("2k a month", "2000"),
    ("USD 250", "250"),
    ("I can pay 150 per month for 12 months", "150"),
    ("I'll pay 200 on 5/15", "200"),
])
def test_read_amount_finds_the_amount(text: str, amount: str) -> None:
    assert read_amount(text) == D(amount)


@pytest.mark.parametrize("text", [
    "6个月", "十二个月", "6期", "分十二期", "15号", "每月5号", "3点", "下午三点", "2026年", "五六百", "千万别打电话",
    "万一还不上", "一起还",
    "6 months", "12 payments", "the 15th", "2pm", "at 3", "in 2026", "May 2026", "3:30", "5/15", "500-800",
    "200 or 300",
    "can I split it over 6", "call me on 13800138000", "+86 138 0013 8000", "0", "no idea", "",
])
def test_read_amount_is_none_when_unsure(text: str) -> None:
    assert read_amount(text) is None
