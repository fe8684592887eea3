"""Citizen and enterprise identifiers: validation (python-stdnum), masking, and Pydantic types.

* 公民身份号码 (resident identity number, GB 11643-1999): 18 characters, 6-digit area code, birth date,
  sequence (odd = male), ISO 7064 MOD 11-2 check character.
* 统一社会信用代码 (unified social credit code, GB 32100-2015): 18 characters, MOD 31 check character.

Single values go through stdnum (which also checks the area code existed at the birth date); bulk
loads use a vectorised check elsewhere (per-row stdnum is too slow for millions of rows).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric, uscc

ID_NUMBER_RULE = "GB 11643"
USCC_RULE = "GB 32100"
PHONE_RULE = "CN mobile"

_RIC_REASONS: dict[type[Exception], str] = {
    stdnum_errors.InvalidLength: "must be 18 characters",
    stdnum_errors.InvalidFormat: "must be 17 digits followed by a digit or X",
    stdnum_errors.InvalidChecksum: "check character is wrong",
    stdnum_errors.InvalidComponent: "birth date or area code is not valid",
}
_USCC_REASONS: dict[type[Exception], str] = {
    stdnum_errors.InvalidLength: "must be 18 characters",
    stdnum_errors.InvalidFormat: "contains characters outside the GB 32100 alphabet",
    stdnum_errors.InvalidChecksum: "check character is wrong",
    stdnum_errors.InvalidComponent: "registration authority or organisation code is not valid",
}
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class IdentifierError(ValueError):
    """A value is not a valid identifier; ``rule`` names the standard it breaks."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"{rule}: {reason}")
        self.rule = rule
        self.reason = reason


def _reason(exc: Exception, reasons: dict[type[Exception], str]) -> str:
    for kind, text in reasons.items():
        if isinstance(exc, kind):
            return text
    return "is not valid"


def validate_id_number(value: str) -> str:
    """Return the compact, upper-case 身份证号 or raise ``IdentifierError``."""
    try:
        return str(ric.validate(value.strip().upper()))
    except stdnum_errors.ValidationError as exc:
        raise IdentifierError(ID_NUMBER_RULE, _reason(exc, _RIC_REASONS)) from exc


def validate_uscc(value: str) -> str:
    """Return the compact, upper-case 统一社会信用代码 or raise ``IdentifierError``."""
    try:
        return str(uscc.validate(value.strip().upper()))
    except stdnum_errors.ValidationError as exc:
        raise IdentifierError(USCC_RULE, _reason(exc, _USCC_REASONS)) from exc


def validate_phone(value: str) -> str:
    """Return an 11-digit mainland mobile number (spaces, dashes and +86 removed) or raise."""
    digits = re.sub(r"[\s\-]", "", value)
    digits = digits.removeprefix("+86").removeprefix("0086")
    if not _MOBILE.match(digits):
        raise IdentifierError(PHONE_RULE, "must be an 11-digit mobile number starting with 13–19")
    return digits


def birth_date(id_number: str) -> date:
    """The birth date encoded in a valid 身份证号."""
    result: date = ric.get_birth_date(validate_id_number(id_number))
    return result


def is_male(id_number: str) -> bool:
    """The sex encoded in a valid 身份证号 (odd 17th digit = male)."""
    return int(validate_id_number(id_number)[16]) % 2 == 1


def mask_id_number(value: str) -> str:
    """``310101199001011234`` → ``3101**********1234``: area prefix and last four kept."""
    text = value.strip()
    if len(text) <= 8:
        return "*" * len(text)
    return text[:4] + "*" * (len(text) - 8) + text[-4:]


def mask_uscc(value: str) -> str:
    """Keep the first 8 and last 2 characters of a credit code (registration authority and check)."""
    text = value.strip()
    if len(text) <= 10:
        return "*" * len(text)
    return text[:8] + "*" * (len(text) - 10) + text[-2:]


def mask_phone(value: str) -> str:
    """``13812345678`` → ``138****5678``."""
    text = value.strip()
    if len(text) < 7:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 7) + text[-4:]


def mask_name(value: str) -> str:
    """``张三`` → ``张*``, ``欧阳娜娜`` → ``欧***``; Latin names keep their first letter."""
    text = value.strip()
    if not text:
        return text
    return text[0] + "*" * max(len(text) - 1, 1)


# Patterns for masking free text (log lines, audit details) where the field name is unknown.
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[0-9Xx])(?![0-9A-Za-z])")
_PHONE_IN_TEXT = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_ELEVEN_DIGITS = re.compile(r"\d{11}")

PERSONAL_FIELDS: dict[str, Any] = {
    "id_number": mask_id_number,
    "id_card": mask_id_number,
    "身份证号": mask_id_number,
    "phone": mask_phone,
    "mobile": mask_phone,
    "联系电话": mask_phone,
    "name": mask_name,
    "full_name": mask_name,
    "姓名": mask_name,
}


def mask_text(text: str) -> str:
    """Mask 身份证号 and mobile numbers found anywhere in ``text``."""
    if len(text) < 11 or not _ELEVEN_DIGITS.search(text):
        return text  # both need a run of at least eleven digits: most text is done with one scan
    text = _ID_IN_TEXT.sub(lambda m: m.group(1)[:4] + "*" * 10 + m.group(3)[-4:], text)
    return _PHONE_IN_TEXT.sub(lambda m: m.group(1) + "****" + m.group(3), text)


def mask_personal(value: Any, key: str | None = None) -> Any:
    """Mask personal data in a JSON-like value: by field name where known, by pattern in any string."""
    if isinstance(value, dict):
        return {k: mask_personal(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_personal(v, key) for v in value]
    if isinstance(value, str):
        masker = PERSONAL_FIELDS.get((key or "").lower()) or PERSONAL_FIELDS.get(key or "")
        return masker(value) if masker else mask_text(value)
    return value


def _pydantic(validator: Any, rule: str) -> AfterValidator:
    def check(value: str) -> str:
        try:
            result: str = validator(value)
        except IdentifierError as exc:
            raise PydanticCustomError("identifier", "{rule}: {reason}", {"rule": rule, "reason": exc.reason}) from exc
        return result

    return AfterValidator(check)


IdNumber = Annotated[str, _pydantic(validate_id_number, ID_NUMBER_RULE)]
"""A 公民身份号码; invalid values fail validation with the GB 11643 rule named."""

CreditCode = Annotated[str, _pydantic(validate_uscc, USCC_RULE)]
"""A 统一社会信用代码; invalid values fail validation with the GB 32100 rule named."""

MobilePhone = Annotated[str, _pydantic(validate_phone, PHONE_RULE)]
"""A mainland mobile number, normalised to 11 digits."""
