"""Citizen and enterprise identifiers: validation (python-stdnum), masking, and Pydantic types.

* 公民身份号码 (resident identity number, GB 11643-1999): 18 characters, 6-digit area code, birth date,
  sequence (odd = male), ISO 7064 MOD 11-2 check character.
* 统一社会信用代码 (unified social credit code, GB 32100-2015): 18 characters, MOD 31 check character.

Masking (``mask_text`` for free text, ``mask_personal`` for JSON-like values) is the one place personal
numbers are hidden, for callers not entitled to them; ``may_read_personal`` says who is.

Single values go through stdnum (which also checks the area code existed at the birth date); bulk
loads use a vectorised check elsewhere (per-row stdnum is too slow for millions of rows).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from functools import cache
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric, uscc

from shgov.core.errors import InvalidValueError
from shgov.core.i18n import N_, gettext
from shgov.core.identity.permissions import USER_READ_PERSONAL, Principal

ID_NUMBER_RULE = N_("GB 11643")
USCC_RULE = N_("GB 32100")
PHONE_RULE = N_("CN mobile")

_RIC_REASONS: dict[type[Exception], str] = {
    stdnum_errors.InvalidLength: N_("must be 18 characters"),
    stdnum_errors.InvalidFormat: N_("must be 17 digits followed by a digit or X"),
    stdnum_errors.InvalidChecksum: N_("check character is wrong"),
    stdnum_errors.InvalidComponent: N_("birth date or area code is not valid"),
}
_USCC_REASONS: dict[type[Exception], str] = {
    stdnum_errors.InvalidLength: N_("must be 18 characters"),
    stdnum_errors.InvalidFormat: N_("contains characters outside the GB 32100 alphabet"),
    stdnum_errors.InvalidChecksum: N_("check character is wrong"),
    stdnum_errors.InvalidComponent: N_("registration authority or organisation code is not valid"),
}
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class IdentifierError(InvalidValueError):
    """A value is not a valid identifier; ``rule`` names the standard it breaks (both message ids)."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(N_("{rule}: {reason}"), rule=rule, reason=reason)
        self.rule = rule
        self.reason = reason

    def text(self, locale: str) -> str:
        """The rule and the reason in ``locale``."""
        return gettext(N_("{rule}: {reason}"), locale).format(
            rule=gettext(self.rule, locale), reason=gettext(self.reason, locale)
        )


def _reason(exc: Exception, reasons: dict[type[Exception], str]) -> str:
    for kind, text in reasons.items():
        if isinstance(exc, kind):
            return text
    return N_("is not valid")


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
        raise IdentifierError(PHONE_RULE, N_("must be an 11-digit mobile number starting with 13–19"))
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


# -- masking free text ---------------------------------------------------------------------------------
#
# One function masks every string that may carry personal data (responses, pages, exports, log lines, audit
# details): 身份证号 (18 characters, or the old 15 digits), mobile numbers in every common form (+86 / 0086 /
# 86 prefixes, spaces or dashes anywhere), landlines with an area code, bank cards (16–19 digits, spaced in
# fours or not), also written digit by digit with spaces or in Chinese numerals. Matching runs on a copy with
# full-width digits and Chinese numerals folded to ASCII (same length), and masks digits in place, so
# separators and the text around stay as they were.
#
# A number counts as standing alone when no digit touches it — letters or CJK glued to it do not hide it, and
# neither does a percent-encoded (``%E8%AF%81``) or escaped (``\u8bc1``) character just before it, whose
# last hex digit may be a digit.
# Every way of writing a digit folds to it: full-width, Chinese numerals (一三八〇〇一三八〇〇〇, 幺 and 洞 as spoken,
# ○ for 〇), the financial forms (壹贰叁), and any other Unicode decimal digit (Arabic-Indic, mathematical bold,
# circled, superscript) — one character for one, so positions stay as they are.
CHINESE_DIGITS = "〇一二三四五六七八九"
_SPOKEN = {"零": "0", "○": "0", "洞": "0", "幺": "1", "两": "2"}
_FINANCIAL = dict(zip("零壹贰叁肆伍陆柒捌玖", "0123456789", strict=True)) | {"貳": "2", "參": "3", "陸": "6"}


def _digit_forms() -> dict[int, str]:
    forms: dict[int, str] = {}
    for code in (*range(0x80, 0x10000), *range(0x1D7CE, 0x1D800)):  # the BMP and the mathematical digits
        char = chr(code)
        value = unicodedata.digit(char, None)
        if value is not None:
            forms[code] = str(value)
    return forms


@cache
def _fold() -> dict[int, str]:
    """The translation table to ASCII digits (built on first use: scanning Unicode takes a quarter second)."""
    return str.maketrans(
        {
            **{chr(code): digit for code, digit in _digit_forms().items()},
            **{c: str(d) for d, c in enumerate(CHINESE_DIGITS)},
            **_SPOKEN,
            **_FINANCIAL,
            "＋": "+",
            "－": "-",
            "（": "(",
            "）": ")",
            "Ｘ": "X",
            "ｘ": "x",
        }
    )


_START = r"(?:(?<![0-9])|(?<=%[0-9A-Fa-f]{2})|(?<=\\u[0-9A-Fa-f]{4})|(?<=\\x[0-9A-Fa-f]{2}))"
_END = r"(?![0-9])"
# Between digits: spaces of every width (zero included), dashes, a slash or an underscore, up to three of them
# (a percent-encoded space, ``%20`` in a logged path, is read as three spaces). Not commas: lists of dates and
# amounts use them.
_SEP = r"(?:[ \t\u00a0\u2000-\u200b\u202f\u205f\u2060\u3000\ufeff\u2010-\u2015/_-]{1,3})"
# An ID ending in X first: otherwise a digit glued before it (the last hex digit of an escape) would be taken
# as the ID's first character and the X left out.
_ID18X = re.compile(_START + rf"(?P<n>[1-9](?:{_SEP}?\d){{16}}{_SEP}?[Xx])")
_ID18 = re.compile(_START + rf"(?P<n>[1-9](?:{_SEP}?\d){{17}}){_END}")
_ID15 = re.compile(_START + r"(?P<n>[1-9]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3})" + _END)
# Cards: 16–19 digits in one run, or in groups of four. A run that starts with a date right after a letter is a
# dated reference (a work order: GD + date + hex), and one that completes a credit code is that code.
_CARD = re.compile(_START + rf"(?P<n>\d{{16,19}}|\d{{4}}(?:{_SEP}\d{{4}}){{3}}(?:{_SEP}?\d{{1,3}})?){_END}")
_DATED = re.compile(r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
# Dots separate a mobile's digits when there are exactly two of them (138.1234.5678, 1380.013.8000): one dot
# makes an amount, three an IP address. The first three digits may stand in brackets, as an area code would.
_MOBILE_IN_TEXT = re.compile(
    _START
    + rf"(?:(?:\+|00)?{_SEP}?86{_SEP}?|\(\+?86\){_SEP}?)?"
    + rf"(?P<n>1{_SEP}?[3-9](?:{_SEP}?\d){{9}}|\(1[3-9]\d\){_SEP}?\d{{4}}{_SEP}?\d{{4}}"
    + r"|(?=(?:\d|\.(?=\d)){13}(?!\.?\d))1[3-9]\d*\.\d+\.\d+)"
    + r"(?!\.?\d)"
)
_LANDLINE = re.compile(
    _START
    + rf"(?:(?:\+|00)?86{_SEP}?\(?(?:0{_SEP}?)?|\(0{_SEP}?|0{_SEP}?)"
    + rf"(?P<area>1{_SEP}?0|2{_SEP}?\d|[3-9](?:{_SEP}?\d){{2}})\)?{_SEP}?"
    + rf"(?P<n>\d(?:{_SEP}?\d){{2,3}}{_SEP}?\d(?:{_SEP}?\d){{3}}){_END}"
)
_PHONES = (_MOBILE_IN_TEXT, _LANDLINE)
# The fewest digits any number masked here has (a landline: 2-digit area code and 7 digits): text with fewer is
# returned as it is after one cheap count.
_FEWEST_DIGITS = 9


_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\x[0-9A-Fa-f]{2}")


def _unescaped(match: re.Match[str]) -> str:
    return match[0][0] + "~" * (len(match[0]) - 1)


def _probe(text: str, *, escapes: bool = False) -> str:
    """``text`` with every digit in ASCII and ``%20`` as three spaces: the same length, so positions agree.

    With ``escapes``, the hex digits of percent-encoded and backslash-escaped characters are no digits either:
    ``%81`` before a card number is the end of an encoded character, not the card's first two digits."""
    probe = text.translate(_fold()).replace("%20", "   ")
    return _ESCAPE.sub(_unescaped, probe) if escapes else probe


def _mask_span(chars: list[str], probe: str, start: int, end: int, keep_first: int, keep_last: int) -> None:
    """Replace the digits of ``chars[start:end]`` (digits of the folded ``probe``) by ``*``, except the first
    and last few."""
    where = [i for i in range(start, end) if probe[i].isdigit() or probe[i] in "Xx"]
    for i in where[keep_first : len(where) - keep_last]:
        chars[i] = "*"


_PROVINCES = frozenset(
    f"{n}"
    for n in (
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        50,
        51,
        52,
        53,
        54,
        *range(61, 66),
        71,
        81,
        82,
    )
)


def is_public_code(number: str) -> bool:
    """True for a 统一社会信用代码 that no 身份证号 or bank card could be — public, and left as it is by masking.

    It must pass the credit code's check and name a province in its area code, and its characters 7–14 must be
    no birth date. (The check character alone is no help: one in 31 ID numbers also passes the credit code's.)
    An 18-digit bank card — rare: cards have 16 or 19 — that passes all of this is left readable too."""
    compact = re.sub(_SEP, "", number).upper()
    if len(compact) != 18 or compact[2:4] not in _PROVINCES or not uscc.is_valid(compact):
        return False
    try:
        born = date(int(compact[6:10]), int(compact[10:12]), int(compact[12:14]))
    except ValueError:
        return True
    return not 1880 <= born.year <= 2100


def _is_public(probe: str, start: int, end: int, *, dated: bool) -> bool:
    """Whether the number ``probe[start:end]`` is part of a public code: an 18-character credit code that it
    lies in, or (with ``dated``: runs that could be an ID or a card) a dated reference number — no ID starts
    with 19 or 20, which name no province."""
    if dated and start and probe[start - 1].isalpha() and _DATED.match(probe, start):
        return True
    return end - start <= 18 and any(is_public_code(probe[s : s + 18]) for s in range(max(end - 18, 0), start + 1))


def mask_text(text: str) -> str:
    """Mask 身份证号, phone numbers and bank card numbers found anywhere in ``text``.

    IDs keep their first and last four characters, mobiles their first three and last four digits, landlines
    their area code and last two digits, cards their first and last four. Dates, amounts, work-order numbers
    and (public) 统一社会信用代码 are left readable."""
    probe = _probe(text)
    if sum(c.isdigit() for c in probe) < _FEWEST_DIGITS:
        return text
    chars = list(text)
    # Text with escapes twice: first reading them as escapes, then — for a number glued to something that only
    # looks like one (``%13800138000``) — as the characters they are written with.
    _mask_numbers(chars, escapes=True)
    if _ESCAPE.search(probe):
        _mask_numbers(chars, escapes=False)
    return "".join(chars)


def _mask_numbers(chars: list[str], *, escapes: bool) -> None:
    probe = _probe("".join(chars), escapes=escapes)
    rules: tuple[tuple[re.Pattern[str], int, int], ...] = (
        (_ID18X, 4, 4),
        (_ID18, 4, 4),
        (_ID15, 4, 4),
        (_CARD, 4, 4),
        (_MOBILE_IN_TEXT, 3, 4),
        (_LANDLINE, 0, 2),
    )
    for pattern, first, last in rules:
        changed = False
        for found in pattern.finditer(probe):
            if _is_public(probe, found.start("n"), found.end("n"), dated=pattern not in _PHONES):
                continue
            _mask_span(chars, probe, found.start("n"), found.end("n"), first, last)
            changed = True
        if changed:
            # Later rules must not find the digits left visible by an earlier one as a number of their own.
            probe = _probe("".join(chars), escapes=escapes)


PERSONAL_FIELDS: dict[str, Any] = {
    "id_number": mask_id_number,
    "id_card": mask_id_number,
    "身份证号": mask_id_number,
    "phone": mask_phone,
    "mobile": mask_phone,
    "reporter_phone": mask_phone,
    "联系电话": mask_phone,
    "name": mask_name,
    "full_name": mask_name,
    "reporter_name": mask_name,
    "姓名": mask_name,
}


def mask_personal(value: Any, key: str | None = None) -> Any:
    """Mask personal data in a JSON-like value: by field name where known, by pattern in any string.

    This is the one masking function: structured fields and free text, responses, pages, exports and logs
    all go through it for callers not entitled to the personal data (see ``may_read_personal``)."""
    if isinstance(value, dict):
        return {k: mask_personal(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_personal(v, key) for v in value]
    if isinstance(value, str):
        masker = PERSONAL_FIELDS.get((key or "").lower()) or PERSONAL_FIELDS.get(key or "")
        # a field-specific mask, then the patterns too: a "name" field may hold a phone number
        return mask_text(masker(value)) if masker else mask_text(value)
    return value


def may_read_personal(principal: Principal | None, tenant_code: str | None, department_code: str | None = None) -> bool:
    """Whether ``principal`` may see personal data of an object of that tenant / department unmasked: it holds
    ``identity.user.read_personal`` there (the one entitlement to personal data; the data's own subject is
    decided by the caller, who knows whose it is)."""
    return principal is not None and principal.allows(USER_READ_PERSONAL, tenant_code, department_code)


def reveal(value: Any, entitled: bool, key: str | None = None) -> Any:
    """``value`` as it is for an entitled caller, masked (``mask_personal``) for anyone else."""
    return value if entitled else mask_personal(value, key)


class MaskedView:
    """An object as a caller not entitled to personal data sees it, for pages: the named attributes masked
    (``mask_personal``), every other attribute as it is. The object itself is never changed (an ORM row stays
    clean, nothing is written)."""

    def __init__(self, target: Any, fields: Iterable[str]) -> None:
        self._target = target
        self._fields = frozenset(fields)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        return mask_personal(value, name) if name in self._fields else value


def masked_view(target: Any, fields: Iterable[str], entitled: bool) -> Any:
    """``target`` itself for an entitled caller, else a ``MaskedView`` of it masking ``fields``."""
    return target if entitled else MaskedView(target, fields)


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
