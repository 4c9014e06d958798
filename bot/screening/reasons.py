"""Why an account ranks where it does, in words, in English and Chinese, as polars expressions.

Each metric has a phrase per language that states its value ("2 of the last 3 instalments paid late",
"最近3期中有2期逾期还款"). The rules' reasons list the phrases that apply; the learned priority's reasons
are the phrases of the features that raised that account's risk most (bot.screening.model's
contributions), so the words come from the model itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
from babel.dates import get_month_names

LANGUAGES = ("en", "zh")
_UNITS = 10_000  # bot.screening.priority's amounts: integer ten-thousandths

AGENT_OUTCOMES = {
    "en": {"promise": "agent: promise recorded", "plan": "agent: plan agreed",
           "dispute_opened": "agent: dispute opened", "wrong_number": "agent: wrong number on file",
           "no_contact": "agent: could not reach the borrower"},
    "zh": {"promise": "坐席：已记录还款承诺", "plan": "坐席：已商定还款计划", "dispute_opened": "坐席：已登记争议",
           "wrong_number": "坐席：登记号码有误", "no_contact": "坐席：未能联系到借款人"},
}
VISIT_OUTCOMES = {
    "en": {"paid_on_spot": "field visit: paid on the spot", "plan": "field visit: agreed a plan",
           "promise": "field visit: promised to pay", "follow_up_visit": "field visit: follow-up visit due",
           "legal_review": "field visit: sent for legal review"},
    "zh": {"paid_on_spot": "上门核实：当场还款", "plan": "上门核实：商定还款计划", "promise": "上门核实：承诺还款",
           "follow_up_visit": "上门核实：需再次上门", "legal_review": "上门核实：转法务审核"},
}


def _plural(count: pl.Expr, one: str, many: str) -> pl.Expr:
    return pl.when(count == 1).then(pl.lit(one)).otherwise(pl.lit(many))


def _percent(column: str) -> pl.Expr:
    """A share as a whole percentage, rounded down (99.6% paid is not "100%")."""
    return (pl.col(column) * 100).round(6).floor().cast(pl.Int64)  # 0.58 * 100 is 57.999...


def _amount() -> pl.Expr:
    cents = (pl.col("overdue_units") + 50) // 100
    return pl.format("{}.{}", cents // 100, (cents % 100).cast(pl.String).str.zfill(2))


def _units_text(column: str) -> pl.Expr:
    """Ten-thousandths as a whole amount (``12500``): enough for a reason."""
    return (pl.col(column) / _UNITS).round(0).cast(pl.Int64).cast(pl.String)


def _month(language: str) -> pl.Expr:
    names = get_month_names("wide", locale=language)
    return pl.col("trend_since").dt.month().replace_strict({m: names[m] for m in range(1, 13)},
                                                          return_dtype=pl.String)


def _days(language: str) -> pl.Expr:
    dpd = pl.col("days_past_due")
    if language == "zh":
        return pl.when(dpd > 0).then(pl.format("逾期{}天", dpd)).otherwise(pl.lit("无逾期"))
    return pl.when(dpd > 0).then(pl.format("{} {} overdue", dpd, _plural(dpd, "day", "days"))).otherwise(
        pl.lit("nothing overdue"))


def _paid(language: str) -> pl.Expr:
    due, ratio = pl.col("installments_due"), pl.col("paid_ratio")
    if language == "zh":
        share = pl.when(ratio >= 1).then(pl.lit("全部")).otherwise(pl.format("{}%", _percent("paid_ratio")))
        return pl.when(due > 0).then(pl.format("已到期{}期，已还应还金额的{}", due, share))
    share = pl.when(ratio >= 1).then(pl.lit("all of")).otherwise(pl.format("{}% of", _percent("paid_ratio")))
    return pl.when(due > 0).then(pl.format("paid {} the {} {} due so far", share, due,
                                           _plural(due, "instalment", "instalments")))


def _trend(language: str) -> pl.Expr:
    trend = pl.col("balance_trend")
    size = (trend.abs() * 100).round(0).cast(pl.Int64)
    if language == "zh":
        words = pl.format("余额自{}以来{}{}%", _month(language),
                          pl.when(trend >= 0).then(pl.lit("上升")).otherwise(pl.lit("下降")), size)
    else:
        words = pl.format("balance {} {}% since {}", pl.when(trend >= 0).then(pl.lit("up")).otherwise(
            pl.lit("down")), size, _month(language))
    return pl.when(trend.is_not_null() & pl.col("trend_since").is_not_null()).then(words)


def _late_recently(language: str) -> pl.Expr:
    late, recent = pl.col("late_last_3"), pl.col("recent_due")
    if language == "zh":
        return pl.when(late > 0).then(pl.format("最近{}期中有{}期未按时足额还款", recent, late))
    return pl.when(late > 0).then(pl.format("{} of the last {} instalments not paid in full on time", late, recent))


def _since_late(language: str) -> pl.Expr:
    back = pl.col("since_late")
    if language == "zh":
        return (pl.when(back == 0).then(pl.lit("上一期未按时足额还款"))
                .when(back > 0).then(pl.format("最近一次未按时足额还款在{}期前", back)))
    return (pl.when(back == 0).then(pl.lit("the last instalment was not paid in full on time"))
            .when(back > 0).then(pl.format("last not paid in full on time {} {} before the latest", back,
                                           _plural(back, "instalment", "instalments"))))


def _paid_in_full(language: str) -> pl.Expr:
    full, recent = pl.col("paid_in_full_last_3"), pl.col("billed_last_3")
    if language == "zh":
        return pl.when(recent > 0).then(pl.format("最近{}期中{}期全额还款", recent, full))
    return pl.when(recent > 0).then(pl.format("paid the whole balance {} of the last {} times", full, recent))


def _contacts(language: str) -> pl.Expr:
    attempts, answered = pl.col("contact_attempts"), pl.col("answered_contacts")
    if language == "zh":
        return pl.when(attempts > 0).then(pl.format("联系{}次，接通{}次", attempts, answered))
    return pl.when(attempts > 0).then(pl.format("{} {}, {} answered", attempts,
                                                _plural(attempts, "contact attempt", "contact attempts"),
                                                pl.when(answered == 0).then(pl.lit("none")).otherwise(answered)))


def _counted(column: str, en: tuple[str, str], zh: str) -> Callable[[str], pl.Expr]:
    """A phrase for a count: ``en`` as (one, many) templates with {}, ``zh`` one template."""
    def phrase(language: str) -> pl.Expr:
        count = pl.col(column)
        if language == "zh":
            return pl.when(count > 0).then(pl.format(zh, count))
        return pl.when(count > 0).then(pl.when(count == 1).then(pl.format(en[0], count))
                                       .otherwise(pl.format(en[1], count)))
    return phrase


def _flag(column: str, en: tuple[str, str | None], zh: tuple[str, str | None]) -> Callable[[str], pl.Expr]:
    """A phrase for a yes/no: (when true, when false); None says nothing."""
    def phrase(language: str) -> pl.Expr:
        yes, no = en if language == "en" else zh
        return pl.when(pl.col(column).cast(pl.Boolean)).then(pl.lit(yes)).otherwise(pl.lit(no, dtype=pl.String))
    return phrase


def _share(column: str, en: str, zh: str) -> Callable[[str], pl.Expr]:
    def phrase(language: str) -> pl.Expr:
        return pl.when(pl.col(column).is_not_null()).then(pl.format(en if language == "en" else zh,
                                                                    _percent(column)))
    return phrase


PHRASES: dict[str, Callable[[str], pl.Expr]] = {
    "days_past_due": _days,
    "overdue_amount": lambda language: pl.when(pl.col("overdue_units") > 0).then(
        pl.format("{} {} unpaid" if language == "en" else "未还{} {}", _amount(), pl.col("currency"))),
    "installments_due": _counted("installments_due", ("{} instalment due so far", "{} instalments due so far"),
                                 "已到期{}期"),
    "on_time_rate": lambda language: pl.when(pl.col("installments_due") > 0).then(pl.format(
        "paid {}% of the instalments on time" if language == "en" else "按时还款的期数占{}%",
        _percent("on_time_rate"))),
    "paid_ratio": _paid,
    "full_pay_ratio": _share("full_pay_ratio", "paid {}% of the balances billed", "已还账单金额的{}%"),
    "last_paid_ratio": _share("last_paid_ratio", "paid {}% of what the last instalment required",
                              "上一期还了应还金额的{}%"),
    "last_full_pay": _share("last_full_pay", "paid {}% of the last balance billed", "上期账单还款比例{}%"),
    "late_last_3": _late_recently,
    "late_instalments": _counted("late_instalments", ("{} instalment not paid in full on time",
                                                      "{} instalments not paid in full on time"), "{}期未按时足额还款"),
    "unpaid_instalments": _counted("unpaid_instalments", ("{} instalment unpaid", "{} instalments unpaid"),
                                   "{}期未还"),
    "since_late": _since_late,
    "paid_in_full_last_3": _paid_in_full,
    "current_streak": _counted("current_streak", ("{} instalment late, the latest", "{} instalments late in a row"),
                               "连续{}期逾期"),
    "longest_streak": _counted("longest_streak", ("at most {} instalment late in a row",
                                                  "up to {} instalments late in a row"), "最长连续逾期{}期"),
    "partial_payments": _counted("partial_payments", ("{} part payment", "{} part payments"), "部分还款{}次"),
    "utilisation": _share("utilisation", "balance at {}% of the credit limit", "余额为信用额度的{}%"),
    "balance_trend": _trend,
    "credit_limit": lambda language: pl.when(pl.col("credit_limit").is_not_null()).then(pl.format(
        "credit limit {} {}" if language == "en" else "信用额度{} {}", _units_text("credit_limit"),
        pl.col("currency"))),
    "latest_balance": lambda language: pl.when(pl.col("latest_balance").is_not_null()).then(pl.format(
        "last statement balance {} {}" if language == "en" else "上期账单余额{} {}", _units_text("latest_balance"),
        pl.col("currency"))),
    "last_payment": lambda language: pl.when(pl.col("last_payment").is_not_null()).then(pl.format(
        "last payment {} {}" if language == "en" else "上期还款{} {}", _units_text("last_payment"),
        pl.col("currency"))),
    "broken_promises": lambda language: pl.when(pl.col("broken_promises") > 0).then(
        pl.when(pl.col("broken_promise_on").is_not_null()).then(pl.format(
            "broke a promise on {}" if language == "en" else "未履行{}的还款承诺",
            pl.col("broken_promise_on").dt.strftime("%-d %B %Y" if language == "en" else "%Y年%-m月%-d日")))
        .otherwise(pl.lit("broke a promise" if language == "en" else "未履行还款承诺"))),
    "broken_plans": _flag("broken_plans", ("fell behind on a repayment plan", None), ("未按还款计划还款", None)),
    "contact_attempts": _contacts,
    "answered_contacts": _contacts,
    "replied": _flag("replied", ("has replied to us", "has not replied to us"), ("曾回复我们", "从未回复我们")),
    "hardship": _flag("hardship", ("told us of a hardship", None), ("曾告知经济困难", None)),
    "agent_outcome": lambda language: pl.col("agent_outcome").replace_strict(
        AGENT_OUTCOMES[language], default=None, return_dtype=pl.String),
    "visit_outcome": lambda language: pl.col("visit_outcome").replace_strict(
        VISIT_OUTCOMES[language], default=None, return_dtype=pl.String),
}
# What the rules' reasons list, in this order (each only where it applies).
RULE_PHRASES = ("days_past_due", "overdue_amount", "paid_ratio", "current_streak", "broken_promises", "broken_plans",
                "hardship", "contact_attempts", "agent_outcome", "visit_outcome")


def rule_reasons(language: str) -> pl.Expr:
    """The rules' reasons: every listed phrase that applies, e.g. "61 days overdue; paid 40% of ...".

    The contact phrase is said only when no attempt was answered and the borrower never replied, and "has
    replied to us" when they did, as before the learned priority.
    """
    parts: list[pl.Expr] = []
    for name in RULE_PHRASES:
        phrase = PHRASES[name](language)
        if name == "current_streak":
            phrase = pl.when(pl.col("current_streak") > 1).then(phrase)
        if name == "contact_attempts":
            parts.append(pl.when(~pl.col("contact_success")).then(phrase))
            parts.append(pl.when(pl.col("replied")).then(PHRASES["replied"](language)))
            continue
        parts.append(phrase)
    return pl.concat_str(parts, separator="; " if language == "en" else "；", ignore_nulls=True)


def learned_reasons(result: pl.DataFrame, top: np.ndarray, features: Sequence[str], language: str,
                    most: int) -> pl.Series:
    """Per account, the first ``most`` distinct phrases of the features its row of ``top`` names (indices
    into ``features``, most raising first; -1 names nothing), joined.

    Each feature's phrase is made only for the accounts that name it, not for every account (39 of them).
    """
    rows, slots = np.nonzero(top >= 0)
    named = top[rows, slots]
    pieces = [pl.DataFrame({"row": rows[named == index], "slot": slots[named == index]}).with_columns(
        result[rows[named == index]].select(PHRASES[features[index]](language).alias("text")).get_column("text"))
        for index in np.unique(named)]
    separator = "; " if language == "en" else "；"
    every = pl.DataFrame({"row": np.arange(result.height)})
    if pieces:
        said = pl.col("text").unique(maintain_order=True).head(most).str.join(separator)
        joined = (pl.concat(pieces).drop_nulls("text").sort("row", "slot")
                  .group_by("row", maintain_order=True).agg(said))
        every = every.join(joined, on="row", how="left", maintain_order="left")
    else:
        every = every.with_columns(pl.lit(None, dtype=pl.String).alias("text"))
    nothing = "no sign of added risk" if language == "en" else "无明显风险信号"
    return every.get_column("text").fill_null(nothing)
