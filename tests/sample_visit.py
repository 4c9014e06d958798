"""A known, complete, submitted field visit, built in memory: for the report's tests and its sample.

张伟 (account A-SAMPLE, CNY, region SH) was visited at home on Saturday 5 December 2026 at 09:00
Shanghai time by team SH-T1 (王磊 SH-0417, 陈静 SH-0522), both present. The household register
did not match, the marriage certificate was not available, and the contract shows 24 months
where the ledger has 12 instalments. 张伟 promised to pay on 15 December; one addendum followed.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.booking import Booking, Slot, Staff
from bot.domain.ledger import Account, Installment
from bot.field.visits import Visit, ledger_figures

SHANGHAI = ZoneInfo("Asia/Shanghai")
VISIT_START = datetime(2026, 12, 5, 9, 0, tzinfo=SHANGHAI)
GENERATED_AT = datetime(2026, 12, 5, 16, 0, tzinfo=SHANGHAI)
PAID_MONTHS = 7  # January to July paid; August paid in part; September to November overdue


def _at(hour: int, minute: int) -> int:
    """Epoch seconds of a time on the visit day in Shanghai, as the record keeps times."""
    return int(datetime(2026, 12, 5, hour, minute, tzinfo=SHANGHAI).timestamp())


def sample_account() -> Account:
    """12 monthly instalments of 1000.00 due on the 15th of 2026; 3,500.00 overdue on the visit day."""
    installments = []
    for month in range(1, 13):
        due = date(2026, month, 15)
        paid = Decimal("1000.00") if month <= PAID_MONTHS else Decimal("500.00") if month == PAID_MONTHS + 1 \
            else Decimal("0")
        installments.append(Installment(month, due, Decimal("1000.00"), paid, due if paid else None))
    return Account(account_id="A-SAMPLE", name="张伟", phone="+8613800138000", language="zh",
                   timezone="Asia/Shanghai", product="consumer", currency="CNY", id_last4="1234",
                   birth_date=date(1985, 3, 1), address="上海市浦东新区世纪大道100号", employer="上海华信贸易有限公司",
                   region="SH", installments=tuple(installments))


def sample_booking() -> Booking:
    return Booking(booking_id="v0a1b2c3d4e5f6071", account_id="A-SAMPLE", conversation_id="c_" + "5" * 32,
                   slot=Slot("SH", VISIT_START, 60), team_id="SH-T1",
                   staff=(Staff("王磊", "SH-0417"), Staff("陈静", "SH-0522")),
                   details={"place": "home", "address": "上海市浦东新区世纪大道100号", "language": "zh"})


def sample_record() -> dict[str, Any]:
    """The sealed record's content after submission, as bot/field/visits.py writes it."""
    return {
        "booking": sample_booking().to_record(),
        "arrival": {"result": "consented", "id_shown": True, "purpose_stated": True, "visit_agreed": True,
                    "entry_agreed": True, "staff_present": ["SH-0417", "SH-0522"], "at": _at(9, 4), "by": "SH-0417"},
        "ledger": ledger_figures(sample_account(), VISIT_START.date()),
        "checklist": {
            "id_card": {"result": "matches", "note": ""},
            "household_register": {"result": "discrepancy",
                                   "note": "户口簿登记地址为浦东新区张杨路500号，与合同地址不同"},
            "marriage_certificate": {"result": "not_available", "note": "借款人称结婚证在老家"},
            "loan_contract": {"result": "matches", "note": "借款人出示合同原件"},
            "income_proof": {"result": "matches", "note": ""},
            "asset_proof": {"result": "matches", "note": "房产证复印件"},
        },
        "contract": {"amount": "12000.00", "term_months": 24, "annual_rate": "7.2"},
        "income_proof": {"stamp": "yes", "signer": "李娜（人事部）"},
        "interview": {
            "occupation": "销售经理", "employer": "上海华信贸易有限公司", "family_members": "配偶、一子（8岁）",
            "monthly_income": "8000", "monthly_expenses": "5500", "delinquency_reason": "公司拖欠工资三个月",
            "willingness": "willing", "ability": "partial",
            "summary": "借款人态度配合，承认欠款，工资恢复后可先还逾期部分。",
        },
        "outcome": {"code": "promise", "amount": "3500.00", "date": "2026-12-15", "months": None,
                    "next_step": "12月16日电话确认到账"},
        "updated_at": _at(10, 12), "updated_by": "SH-0417",
        "submitted_at": _at(10, 12), "submitted_by": "SH-0417",
    }


def sample_visit() -> tuple[Visit, Account]:
    """The submitted visit, with one addendum, and the account it was made for."""
    addendum = {"at": _at(15, 30), "by": "SH-0522", "text": "下午借款人来电补充：户口簿地址变更手续正在办理中。"}
    return Visit("v0a1b2c3d4e5f6071", "submitted", 4, sample_record(), [addendum]), sample_account()
