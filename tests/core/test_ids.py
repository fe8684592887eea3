"""Identifiers: GB 11643 身份证号 and GB 32100 统一社会信用代码 validated, masked, and typed."""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from shgov.core.ids import (
    CreditCode,
    IdentifierError,
    IdNumber,
    MobilePhone,
    birth_date,
    is_male,
    mask_id_number,
    mask_name,
    mask_personal,
    mask_phone,
    mask_text,
    validate_id_number,
    validate_uscc,
)
from shgov.core.logging import JsonFormatter

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
# Shanghai area codes that existed through the whole range generated below.
AREAS = ["310101", "310104", "310105", "310106", "310107", "310108", "310109", "310110"]


def ric_check(body: str) -> str:
    """GB 11643 check character, computed independently of the code under test."""
    return "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 11]


def uscc_check(body: str) -> str:
    """GB 32100 check character."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


id_numbers = st.builds(
    lambda area, days, seq: (lambda body: body + ric_check(body))(
        f"{area}{(date(1960, 1, 1) + timedelta(days=days)):%Y%m%d}{seq:03d}"
    ),
    st.sampled_from(AREAS),
    st.integers(min_value=0, max_value=(date(1990, 12, 31) - date(1960, 1, 1)).days),
    st.integers(min_value=0, max_value=999),
)

credit_codes = st.builds(
    lambda tail: (lambda body: body + uscc_check(body))("91310000" + tail),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
)


@given(id_numbers)
def test_every_well_formed_id_number_is_valid_and_decodes(number: str) -> None:
    assert validate_id_number(number.lower()) == number
    assert birth_date(number) == date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    assert is_male(number) == (int(number[16]) % 2 == 1)


@given(id_numbers, st.integers(min_value=0, max_value=16), st.integers(min_value=1, max_value=9))
def test_changing_one_digit_of_an_id_number_is_caught(number: str, position: int, delta: int) -> None:
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    with pytest.raises(IdentifierError) as caught:
        validate_id_number(changed)
    assert caught.value.rule == "GB 11643"


@given(id_numbers)
def test_a_masked_id_number_keeps_only_the_ends(number: str) -> None:
    masked = mask_id_number(number)
    assert masked == number[:4] + "*" * 10 + number[-4:]
    assert number[4:14] not in masked


@given(credit_codes)
def test_every_well_formed_credit_code_is_valid(code: str) -> None:
    assert validate_uscc(code) == code


@given(credit_codes, st.integers(min_value=8, max_value=16))
def test_changing_one_character_of_a_credit_code_is_caught(code: str, position: int) -> None:
    replacement = "0" if code[position] != "0" else "1"
    with pytest.raises(IdentifierError, match="GB 32100"):
        validate_uscc(code[:position] + replacement + code[position + 1 :])


class Applicant(BaseModel):
    id_number: IdNumber
    credit_code: CreditCode | None = None
    phone: MobilePhone | None = None


def test_pydantic_types_name_the_field_and_the_rule() -> None:
    with pytest.raises(ValidationError) as caught:
        Applicant(id_number="310101199003071231", credit_code="91310000ABC", phone="123")
    errors = {e["loc"][0]: e["msg"] for e in caught.value.errors()}
    assert "GB 11643" in errors["id_number"]
    assert "check character" in errors["id_number"]
    assert "GB 32100" in errors["credit_code"]
    assert "mobile" in errors["phone"]


def test_a_valid_applicant_is_normalised() -> None:
    applicant = Applicant(id_number="31010419900307123x", phone="+86 138-1234-5678")
    assert applicant.id_number == "31010419900307123X"
    assert applicant.phone == "13812345678"


def test_masking_helpers() -> None:
    assert mask_id_number("31010419900307123X") == "3101**********123X"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"


def test_personal_data_is_masked_by_field_name_and_by_pattern() -> None:
    masked = mask_personal(
        {"name": "张伟", "phone": "13812345678", "note": "身份证31010419900307123X，电话13912345678", "n": 3}
    )
    assert masked == {
        "name": "张*",
        "phone": "138****5678",
        "note": "身份证3101**********123X，电话139****5678",
        "n": 3,
    }
    assert mask_text("order GD2026112412345678") == "order GD2026112412345678"
    assert mask_text("card 1234567890123456789") == "card 1234***********6789"


def test_log_lines_never_carry_personal_data() -> None:
    record = logging.makeLogRecord(
        {"msg": "applicant %s called from %s", "args": ("31010419900307123X", "13812345678"), "phone": "13812345678"}
    )
    line = json.loads(JsonFormatter().format(record))
    assert "31010419900307123X" not in json.dumps(line, ensure_ascii=False)
    assert line["msg"] == "applicant 3101**********123X called from 138****5678"
    assert line["phone"] == "138****5678"
