"""The one masking function, proven on generated text: every 身份证号, phone and bank card variant is hidden
wherever it stands, and ordinary text (dates, amounts, work-order numbers, credit codes) stays readable."""

from __future__ import annotations

import json
import logging
import re
from datetime import date, timedelta
from typing import NamedTuple
from urllib.parse import quote

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.cn import ric, uscc

from shgov.core.ids import CHINESE_DIGITS, is_public_code, mask_personal, mask_text
from shgov.core.logging import JsonFormatter, MaskingFormatter, configure_logging


class Secret(NamedTuple):
    """A personal number as written, the digits that identify someone, and how many the mask may show."""

    written: str
    digits: str
    kept: int


AREAS = ("310101", "310104", "310115", "110105", "440305", "320102", "510107")
SEPARATORS = ("", " ", "-", "  ", "/", "_", "\u2009", "\u200b", "%20")
CJK = "身份证号码联系电话银行卡申请人住址上海市浦东新区路号室"


def _digits(text: str) -> str:
    """The ASCII digits (and X) of ``text``, full-width and Chinese numerals folded, in order."""
    chinese = {ord(c): str(d) for d, c in enumerate(CHINESE_DIGITS)} | {ord("零"): "0", ord("幺"): "1"}
    financial = {ord(c): str(d) for d, c in enumerate("零壹贰叁肆伍陆柒捌玖")}
    arabic = {0x0660 + d: str(d) for d in range(10)}
    folded = text.translate({0xFF10 + d: str(d) for d in range(10)} | chinese | financial | arabic | {ord("Ｘ"): "X"})
    folded = folded.replace("%20", " ")
    return "".join(c for c in folded.upper() if c.isdigit() or c == "X")


@st.composite
def id18(draw: st.DrawFn) -> Secret:
    born = draw(st.dates(date(1920, 1, 1), date(2020, 12, 31)))
    body = draw(st.sampled_from(AREAS)) + born.strftime("%Y%m%d") + f"{draw(st.integers(0, 999)):03d}"
    number = body + ric.calc_check_digit(body + "0")
    if draw(st.booleans()):
        number = number.lower()
    sep = draw(st.sampled_from(("", "", " ", "/", "  ")))
    cuts = draw(st.sampled_from(((6, 14), (6, 10, 14), (3, 6, 14), tuple(range(1, 18)))))  # 6-8-4, 6-4-4-4, …
    parts = [number[a:b] for a, b in zip((0, *cuts), (*cuts, 18), strict=True)]
    return Secret(sep.join(parts), number.upper(), 8)


@st.composite
def id15(draw: st.DrawFn) -> Secret:
    born = draw(st.dates(date(1920, 1, 1), date(1999, 12, 31)))
    number = draw(st.sampled_from(AREAS)) + born.strftime("%y%m%d") + f"{draw(st.integers(0, 999)):03d}"
    return Secret(number, number, 8)


@st.composite
def mobile(draw: st.DrawFn) -> Secret:
    number = f"1{draw(st.integers(3, 9))}{draw(st.integers(0, 9))}{draw(st.integers(0, 99_999_999)):08d}"
    sep = draw(st.sampled_from(SEPARATORS))
    written = draw(
        st.sampled_from(
            (
                number[:3] + sep + number[3:7] + sep + number[7:],
                " ".join(number),  # digit by digit, as read out
                number.translate({ord(str(d)): c for d, c in enumerate(CHINESE_DIGITS)}),  # 一三八〇〇一三八〇〇〇
                number.replace("1", "幺").translate({ord(str(d)): c for d, c in enumerate(CHINESE_DIGITS)}),
                number.translate({ord(str(d)): c for d, c in enumerate("零壹贰叁肆伍陆柒捌玖")}),  # 壹叁捌…
                number.translate({ord(str(d)): chr(0x0660 + d) for d in range(10)}),  # Arabic-Indic
                f"({number[:3]}) {number[3:7]} {number[7:]}",  # the first three bracketed like an area code
                f"{number[:4]}.{number[4:7]}.{number[7:]}",  # two dots anywhere (one would be an amount)
            )
        )
    )
    prefix = draw(st.sampled_from(("", "+86", "+86 ", "86-", "86", "0086 ", "(+86)", "+86-")))
    return Secret(prefix + written, number, 7)


@st.composite
def landline(draw: st.DrawFn) -> Secret:
    area = draw(st.sampled_from(("21", "10", "571", "755", "20")))
    rest = 7 if len(area) == 2 else 6  # 8-digit local numbers after a 2-digit area code, 7 after a 3-digit one
    local = f"{draw(st.integers(2, 9))}{draw(st.integers(0, 10**rest - 1)):0{rest}d}"
    sep = draw(st.sampled_from(SEPARATORS))
    local = local[:-4] + sep + local[-4:]
    form = draw(st.sampled_from(("(0{a}) {n}", "0{a}-{n}", "0{a} {n}", "(0{a}){n}", "+86 {a} {n}", "0{a}{n}")))
    written = form.format(a=area, n=local)
    if draw(st.booleans()):  # digit by digit, as read out
        written = " ".join("0" + area + _digits(local))
    return Secret(written, _digits(local), 2)


@st.composite
def bank_card(draw: st.DrawFn) -> Secret:
    length = draw(st.integers(16, 19))
    body = "62" + "".join(str(draw(st.integers(0, 9))) for _ in range(length - 3))
    number = body + luhn.calc_check_digit(body)  # every bank card passes the Luhn check
    if draw(st.booleans()):
        return Secret(" ".join(number[i : i + 4] for i in range(0, length, 4)), number, 8)
    return Secret(number, number, 8)


def fullwidth(text: str) -> str:
    return text.translate({ord(str(d)): chr(0xFF10 + d) for d in range(10)})


# What a secret may be glued to: letters, CJK, punctuation, percent-encoded or escaped Chinese — never a bare
# digit (that would make another, longer number).
surroundings = st.one_of(
    st.text(alphabet="abcxyzABCXYZ:：，,;=&?/ \n" + CJK, max_size=12),
    st.sampled_from(CJK).map(lambda c: quote(c) if c else c),
    st.just(quote("身份证号")),
    st.just(quote("身份证") + "%3A"),
    st.just("身份证".encode("unicode_escape").decode()),
    st.just("id="),
    st.just("tel:"),
)

secrets_ = st.one_of(id18(), id15(), mobile(), landline(), bank_card())


@settings(max_examples=400, deadline=None)
@given(before=surroundings, secret=secrets_, after=surroundings, wide=st.booleans())
@example(before="abc", secret=Secret("31010419900307123X", "31010419900307123X", 8), after="def", wide=False)
@example(before=quote("身份证"), secret=Secret("31010419900307123X", "31010419900307123X", 8), after="", wide=False)
@example(before="电话", secret=Secret("+86 138 0013 8000", "13800138000", 7), after="", wide=False)
@example(before="电话", secret=Secret("1 3 8 0 0 1 3 8 0 0 0", "13800138000", 7), after="", wide=False)
@example(before="电话", secret=Secret("幺三八〇〇幺三八〇〇〇", "13800138000", 7), after="", wide=False)
@example(before="", secret=Secret("(021) 6321 0000", "63210000", 2), after="", wide=False)
@example(before="", secret=Secret("310104900307123", "310104900307123", 8), after="", wide=False)
@example(  # the escape's last hex digits are no part of the card
    before=quote("证"),
    secret=Secret("6200 0000 0000 0000 000", "6200000000000000000", 8),
    after=quote("身份证号"),
    wide=False,
)
def test_no_personal_number_survives_masking(before: str, secret: Secret, after: str, wide: bool) -> None:
    # digits that, with a letter or two around them, spell a valid credit code are that public code: the one
    # thing left readable (a card-length number has about one chance in 300 to)
    around = before[-2:] + secret.written + after[:2]
    assume(not any(is_public_code(around[i : i + 18]) for i in range(len(around))))
    written = fullwidth(secret.written) if wide else secret.written
    text = before + written + after
    masked = mask_text(text)
    digits, kept = secret.digits, secret.kept
    # the number is gone: neither written as it was nor recoverable by dropping separators
    assert written not in masked
    assert digits not in _digits(masked)
    assert masked.count("*") >= len(digits) - kept
    # and the text around it is left as it was
    assert masked.startswith(before)
    assert len(masked) == len(text)


work_order_numbers = st.builds(
    lambda d, tail: f"GD{d:%Y%m%d}{tail}",
    st.dates(date(2020, 1, 1), date(2030, 12, 31)),
    st.text(alphabet="0123456789ABCDEF", min_size=8, max_size=8),
)


@st.composite
def credit_code(draw: st.DrawFn) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    org = "".join(draw(st.sampled_from(alphabet)) for _ in range(9))
    body = draw(st.sampled_from(("91", "92", "93", "12", "52"))) + draw(st.sampled_from(AREAS)) + org
    code = body + uscc.calc_check_digit(body)
    assume(not ric.is_valid(code))
    return code


ordinary = st.one_of(
    st.dates(date(1990, 1, 1), date(2035, 12, 31)).map(lambda d: d.isoformat()),
    st.dates(date(1990, 1, 1), date(2035, 12, 31)).map(lambda d: f"{d.year}年{d.month}月{d.day}日"),
    st.dates(date(1990, 1, 1), date(2035, 12, 31)).map(lambda d: f"{d:%Y%m%d}"),
    st.datetimes().map(lambda t: t.isoformat(timespec="seconds")),
    st.decimals(0, 10**9, places=2).map(lambda a: f"¥{a:,} 元"),
    st.integers(0, 10**7).map(lambda n: f"{n} 元"),
    work_order_numbers,
    credit_code(),
    st.text(alphabet=CJK + "abc ，。", max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(ordinary, min_size=1, max_size=4))
def test_ordinary_text_stays_readable(parts: list[str]) -> None:
    text = "，".join(parts)
    assert mask_text(text) == text


def test_masking_keeps_what_identifies_nothing() -> None:
    assert mask_text("身份证31010419900307123X，电话13912345678") == "身份证3101**********123X，电话139****5678"
    assert mask_text("+86 138 0013 8000") == "+86 138 **** 8000"
    assert mask_text("电话 138.1234.5673") == "电话 138.****.5673"
    assert mask_text("金额 139123456.78 元") == "金额 139123456.78 元"
    assert mask_text("(021) 6321 0000") == "(021) **** **00"
    assert mask_text("6222 0212 3456 7890") == "6222 **** **** 7890"
    assert mask_text("统一社会信用代码 91310115MA1K4LXE3Y") == "统一社会信用代码 91310115MA1K4LXE3Y"
    assert mask_text("工单 GD2026112412345678 于 2026-11-24 派发") == "工单 GD2026112412345678 于 2026-11-24 派发"


def test_structured_values_are_masked_by_name_and_by_pattern() -> None:
    masked = mask_personal(
        {
            "reporter_phone": "13812345678",
            "licences": [{"holder_id": "31010419900307123X", "licence_no": "SH-LIC-2026-000123"}],
            "comment": "请联系 138-1234-5678",
            "amount": 12345,
        }
    )
    assert masked["reporter_phone"] == "138****5678"
    assert masked["licences"][0]["holder_id"] == "3101**********123X"
    assert masked["licences"][0]["licence_no"] == "SH-LIC-2026-000123"
    assert masked["comment"] == "请联系 138-****-5678"
    assert masked["amount"] == 12345


@settings(max_examples=100, deadline=None)
@given(secret=secrets_, as_int=st.booleans())
def test_log_lines_mask_every_variant(secret: Secret, as_int: bool) -> None:
    # as above: a card-length number that spells a valid credit code is that public code, left readable
    assume(not is_public_code(secret.digits))
    standalone = secret.kept != 2  # a landline's local number alone is no landline
    value: object = int(secret.digits) if as_int and standalone and secret.digits.isdigit() else secret.written
    record = logging.makeLogRecord({"msg": "applicant %s", "args": (value,), "contact": value, "detail": [value]})
    for line in (JsonFormatter().format(record), MaskingFormatter("%(message)s").format(record)):
        assert secret.digits not in _digits(re.sub(r"\d{4}-\d{2}-\d{2}T[\d:.]+", "", line))
    json.loads(JsonFormatter().format(record))


def test_a_percent_encoded_query_string_in_a_log_line_is_masked() -> None:
    birthday = date(1990, 3, 7) + timedelta(days=0)
    body = "310104" + f"{birthday:%Y%m%d}" + "123"
    number = body + ric.calc_check_digit(body + "0")
    line = MaskingFormatter("%(message)s").format(
        logging.makeLogRecord({"msg": "GET /prepare?q=" + quote("身份证") + number + "&tel=%2B8613800138000"})
    )
    assert number not in line
    assert "13800138000" not in line


def test_access_log_lines_keep_the_path_and_drop_the_query(capsys: pytest.CaptureFixture[str]) -> None:
    # uvicorn's own record shape: (client, method, path with query, HTTP version, status)
    path = "/api/v1/offerings/item/310000-SWJ-0003/prepare?applicant=31010419900307123X&identity_name=" + quote("张三")
    access = logging.makeLogRecord(
        {"name": "uvicorn.access", "msg": '%s - "%s %s HTTP/%s" %d', "args": ("127.0.0.1:5", "GET", path, "1.1", 200)}
    )
    other = logging.makeLogRecord({"name": "shgov.other", "msg": "%s %s %s", "args": ("a", "b", "keep?this")})
    root = logging.getLogger()
    saved = root.handlers, root.level
    try:
        configure_logging("INFO", json_lines=True)
        for record in (access, other):  # straight to the handler: other tests may have configured the loggers
            root.handlers[0].handle(record)
    finally:
        root.handlers, level = saved
        root.setLevel(level)
    access_line, other_line = capsys.readouterr().err.strip().splitlines()
    assert "/prepare?…" in access_line
    assert quote("张三") not in access_line
    assert "applicant" not in access_line
    assert "keep?this" in other_line  # only access lines lose their query
