"""The field visit report: what its PDFs say in each language, and that its HTML is safe and self-contained."""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from bot.domain.ledger import Installment
from bot.field.report import labels, render_all, render_html, render_pdf
from bot.field.visits import (
    ABILITY,
    ARRIVAL_CHECKS,
    CHECKLIST,
    INTERVIEW,
    NOT_WENT_AHEAD,
    OUTCOMES,
    RESULTS,
    WILLINGNESS,
    Visit,
    ledger_figures,
)
from tests.sample_visit import GENERATED_AT, sample_visit

CHECKLIST_ROWS = {
    "zh": ["身份证 一致 —",
           "户口簿 不一致 户口簿登记地址为浦东新区张杨路500号，与合同地址不同",
           "结婚证 未能提供 借款人称结婚证在老家",
           "借款合同 一致 借款人出示合同原件",
           "收入证明 一致 —",
           "资产证明 一致 房产证复印件"],
    "en": ["ID card Matches —",
           "Household register Discrepancy 户口簿登记地址为浦东新区张杨路500号，与合同地址不同",
           "Marriage certificate Not available 借款人称结婚证在老家",
           "Loan contract Matches 借款人出示合同原件",
           "Proof of income Matches —",
           "Proof of assets Matches 房产证复印件"],
}
# As Babel gives them for zh_CN and en_US: CNY is ¥ in Chinese, CN¥ in English.
EXPECTED = {
    "zh": ["借款人 张伟", "走访地点 住所", "走访时间 2026年12月5日 09:00 (Asia/Shanghai)",
           "王磊 SH-0417 是", "陈静 SH-0522 是", "记录人 王磊 (SH-0417)", "不一致项：户口簿、借款合同",
           "金额（账务：应还总额） ¥12,000.00 ¥12,000.00", "24个月 12个月", "年利率 7.2% —",
           "走访日逾期金额 — ¥3,500.00", "单位盖章 是", "月收入 ¥8,000.00", "还款意愿 愿意还款",
           "还款能力 可部分还款", "结果 承诺还款", "金额 ¥3,500.00", "日期 2026年12月15日",
           "提交时间 2026年12月5日 10:12", "2026年12月5日 15:30 · 陈静 (SH-0522)",
           "下午借款人来电补充：户口簿地址变更手续正在办理中。", "生成时间：2026年12月5日 16:00"],
    "en": ["Borrower 张伟", "Place Home", "Visit time December 5, 2026, 9:00 AM (Asia/Shanghai)",
           "王磊 SH-0417 Yes", "陈静 SH-0522 Yes", "Recorded by 王磊 (SH-0417)",
           "Discrepancies: Household register, Loan contract",
           "Amount (ledger: total scheduled) CN¥12,000.00 CN¥12,000.00", "24 months 12 months",
           "Annual rate 7.2% —", "Overdue on the visit day — CN¥3,500.00", "Company stamp Yes",
           "Monthly income CN¥8,000.00", "Willingness to pay Willing", "Ability to pay Can pay in part",
           "Outcome Promise to pay", "Amount CN¥3,500.00", "Date December 15, 2026",
           "Submitted at December 5, 2026, 10:12 AM", "December 5, 2026, 3:30 PM · 陈静 (SH-0522)",
           "下午借款人来电补充：户口簿地址变更手续正在办理中。", "Generated: December 5, 2026, 4:00 PM"],
}
CONFIDENTIAL = {"zh": "机密——含个人信息", "en": "Confidential — personal information"}
HOSTILE = "<script>alert(1)</script>"
RED_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEElEQVR4nGP8z4AATAxEcQAz0QEHOoQ+"
                           "uAAAAABJRU5ErkJggg==")  # 4x4 pixels
A4_POINTS = (595.28, 841.89)


@pytest.fixture(scope="module")
def reports() -> dict[str, bytes]:
    visit, account = sample_visit()
    return render_all(visit, account, GENERATED_AT)


@pytest.fixture(scope="module")
def pages(reports: dict[str, bytes]) -> dict[str, list[str]]:
    """Each PDF's text, page by page."""
    return {language: [page.extract_text() for page in PdfReader(io.BytesIO(reports[f"{language}.pdf"])).pages]
            for language in ("zh", "en")}


def _text(document: str) -> str:
    """An HTML document's visible words, one space between."""
    body = document.split("<body>", 1)[1]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def _discrepancy_line(document: str) -> str:
    found = re.search(r'<p class="discrepancies[^"]*">(.*?)</p>', document, re.S)
    assert found
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).split())


def _not_ahead(result: str) -> Visit:
    """The sample visit as it would stand had the borrower refused, or nobody been home."""
    visit, _ = sample_visit()
    record = {key: visit.record[key] for key in ("booking", "ledger", "updated_at", "updated_by", "submitted_at",
                                                 "submitted_by")}
    record["arrival"] = {"result": result, "at": visit.record["arrival"]["at"], "by": "SH-0522"}
    record["outcome"] = {"code": "follow_up_visit", "amount": "", "date": "2026-12-12", "months": None, "next_step": ""}
    return Visit(visit.booking_id, "submitted", 3, record)


def test_both_languages_are_made_as_html_and_as_a4_pdf(reports: dict[str, bytes]) -> None:
    assert set(reports) == {"zh.html", "zh.pdf", "en.html", "en.pdf"}
    for language in ("zh", "en"):
        assert reports[f"{language}.html"].startswith(b"<!doctype html>")
        reader = PdfReader(io.BytesIO(reports[f"{language}.pdf"]))
        box = reader.pages[0].mediabox
        assert (round(float(box.width), 2), round(float(box.height), 2)) == A4_POINTS


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_pdf_reads_the_visit_in_its_language(pages: dict[str, list[str]], language: str) -> None:
    text = "\n".join(pages[language])
    for expected in [*EXPECTED[language], "v0a1b2c3d4e5f6071", "A-SAMPLE", "上海市浦东新区世纪大道100号"]:
        assert expected in text
    other = "en" if language == "zh" else "zh"
    assert EXPECTED[other][0] not in text


@pytest.mark.parametrize("language", ["zh", "en"])
def test_each_checklist_item_shows_its_result_and_note(pages: dict[str, list[str]], language: str) -> None:
    lines = "\n".join(pages[language]).splitlines()
    for row in CHECKLIST_ROWS[language]:
        assert row in lines


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_page_is_numbered_and_marked_confidential(pages: dict[str, list[str]], language: str) -> None:
    count = len(pages[language])
    assert count >= 2
    for number, text in enumerate(pages[language], start=1):
        assert CONFIDENTIAL[language] in text
        assert f"{number} / {count}" in text


def test_the_discrepancy_and_the_term_mismatch_are_highlighted(reports: dict[str, bytes]) -> None:
    document = reports["en.html"].decode()
    highlighted = re.findall(r'<tr class="discrepancy">(.*?)</tr>', document, re.S)
    assert len(highlighted) == 1 and "Household register" in highlighted[0]
    assert _discrepancy_line(document) == "Discrepancies: Household register, Loan contract"
    mismatched = re.findall(r'<tr class="mismatch">(.*?)</tr>', document, re.S)
    assert len(mismatched) == 1 and "24 months" in mismatched[0]
    assert re.search(r"tr\.discrepancy td \{ background: #fde2e2; \}", document)


def test_a_contract_term_matching_the_ledger_is_no_discrepancy() -> None:
    visit, account = sample_visit()
    as_long = dataclasses.replace(account, installments=tuple(
        Installment(n, date(2026, 1, 15), Decimal("500.00"), Decimal("0"), None) for n in range(1, 25)))
    visit.record["ledger"] = ledger_figures(as_long, date(2026, 12, 5))  # what the ledger said at arrival
    document = render_html(visit, as_long, "en", GENERATED_AT)
    assert _discrepancy_line(document) == "Discrepancies: Household register"
    assert 'class="mismatch"' not in document
    visit.record["checklist"]["household_register"]["result"] = "matches"
    assert _discrepancy_line(render_html(visit, as_long, "en", GENERATED_AT)) == "Discrepancies: None"


def test_hostile_text_is_escaped_and_no_script_is_in_the_report() -> None:
    visit, account = sample_visit()
    visit.record["checklist"]["household_register"]["note"] = HOSTILE
    visit.record["interview"]["summary"] = '"><img src=x onerror=alert(2)>'
    visit.addenda[0]["text"] = HOSTILE
    document = render_html(visit, dataclasses.replace(account, name="<b>张伟</b>"), "zh", GENERATED_AT)
    assert "<script" not in document.lower() and "<img" not in document and "<b>" not in document
    assert document.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2
    assert "&lt;b&gt;张伟&lt;/b&gt;" in document
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in document


def test_the_html_stands_alone(reports: dict[str, bytes]) -> None:
    for language in ("zh", "en"):
        document = reports[f"{language}.html"].decode().lower()
        for outside in ("http:", "https:", "<link", "src=", "url(", "@import", "<script"):
            assert outside not in document


def test_the_pdf_fetches_nothing_even_a_local_file(tmp_path: Path) -> None:
    image = tmp_path / "red.png"
    image.write_bytes(RED_PNG)
    pdf = render_pdf(f'<!doctype html><p>{CONFIDENTIAL["en"]}</p><img src="{image.as_uri()}">')
    assert CONFIDENTIAL["en"] in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert b"/Image" not in pdf


@pytest.mark.parametrize(("result", "zh", "en"), [
    ("refused", "借款人拒绝走访。", "The borrower refused the visit."),
    ("not_home", "无人在家。", "Nobody was home."),
])
def test_a_visit_that_did_not_go_ahead_says_why_and_has_no_checklist(result: str, zh: str, en: str) -> None:
    visit, (_, account) = _not_ahead(result), sample_visit()
    document = render_html(visit, account, "en", GENERATED_AT)
    english, chinese = _text(document), _text(render_html(visit, account, "zh", GENERATED_AT))
    assert f"{en} The visit did not go ahead" in english and zh in chinese
    assert "Recorded by 陈静 (SH-0522)" in english
    assert "王磊 SH-0417 No 陈静 SH-0522 No" in english
    assert "Outcome Follow-up visit Date December 12, 2026 Next step —" in english
    for absent in ("Documents checked", "Household register", "Discrepancies", "Interview", "Staff showed their ID"):
        assert absent not in english
    assert "户口簿" not in chinese and "身份证" not in chinese
    assert 'class="checklist"' not in document and 'class="figures"' not in document


def test_an_unknown_language_is_refused() -> None:
    visit, account = sample_visit()
    with pytest.raises(ValueError, match="fr"):
        render_html(visit, account, "fr", GENERATED_AT)


def test_every_code_has_a_label_in_both_languages() -> None:
    groups = {"checklist": CHECKLIST, "result": RESULTS, "willingness": WILLINGNESS, "ability": ABILITY,
              "outcome": OUTCOMES, "arrival": ARRIVAL_CHECKS + NOT_WENT_AHEAD, "interview": INTERVIEW,
              "state": ("new", "draft", "submitted"), "place": ("home", "work")}
    words = labels()
    missing = [f"{group}.{code}" for group, codes in groups.items() for code in codes if f"{group}.{code}" not in words]
    assert missing == []
    incomplete = [key for key, entry in words.items()
                  if set(entry) != {"en", "zh"} or not all(isinstance(v, str) and v.strip() for v in entry.values())]
    assert incomplete == []
