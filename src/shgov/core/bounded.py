"""Inputs bounded once for every route: integers to 64 bits, free-form JSON in size and depth, no NUL bytes.

``bound_integer_inputs(app)`` makes every parameter and body field an endpoint declares as ``int`` (query,
path, header, cookie, form and JSON, inside models, lists and dicts too) answer 422 beyond the signed 64-bit
range, through the same ``RequestValidationError`` — and so the same problem document naming the field —
as any other invalid input, rather than fail in the database as a 500 (SQLite cannot bind such a number,
PostgreSQL refuses it). Pages that read a form by hand use ``whole_number`` for the same rule.

The same wrapper refuses, with a 422 naming the field, a string holding a NUL byte anywhere in any declared
input (PostgreSQL cannot store one and SQLite would keep it silently), and a free-form JSON value (a field
declared ``dict``/``list``/``Any``) larger than ``MAX_JSON_BYTES`` serialized or nested deeper than
``MAX_JSON_DEPTH``. ``BoundedJson`` / ``bounded_json()`` declare such a field with its limits explicitly, and
``HttpUrl`` an address that must be ``http``/``https``.
"""

from __future__ import annotations

import collections.abc
import json
import types
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, NewType, Union, get_args, get_origin
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from pydantic import AfterValidator, BaseModel

from shgov.core.errors import InvalidError, InvalidValueError
from shgov.core.i18n import N_
from shgov.core.numbers import INT64_MAX, INT64_MIN

_SEQUENCES = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set, collections.abc.Iterable)
_MAPPINGS = (dict, collections.abc.Mapping)


def _arms(annotations: Iterable[Any]) -> list[Any]:
    """The plain types an annotation admits: ``Annotated`` stripped, unions and ``NewType`` opened."""
    arms: list[Any] = []
    for annotation in annotations:
        origin = get_origin(annotation)
        if origin is Annotated:
            arms.extend(_arms(get_args(annotation)[:1]))
        elif origin is Union or origin is types.UnionType:
            arms.extend(_arms(get_args(annotation)))
        elif isinstance(annotation, NewType):
            arms.extend(_arms([annotation.__supertype__]))
        else:
            arms.append(annotation)
    return arms


def _out_of_range(value: int, loc: tuple[int | str, ...]) -> dict[str, Any]:
    """The error pydantic itself reports for a bound that is broken (so the problem reads the same)."""
    if value > INT64_MAX:
        kind, word, bound = "less_than_equal", "less than or equal to", INT64_MAX
    else:
        kind, word, bound = "greater_than_equal", "greater than or equal to", INT64_MIN
    key = "le" if kind == "less_than_equal" else "ge"
    return {"type": kind, "loc": loc, "msg": f"Input should be {word} {bound}", "input": value, "ctx": {key: bound}}


def range_errors(annotations: Iterable[Any], value: Any, loc: tuple[int | str, ...]) -> Iterator[dict[str, Any]]:
    """Errors for every integer in ``value`` (validated against ``annotations``) outside 64 bits.

    Only numbers declared ``int`` count: free-form JSON (``dict[str, Any]``) may carry what it likes.
    """
    arms = _arms(annotations)
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if int in arms and not INT64_MIN <= value <= INT64_MAX:
            yield _out_of_range(value, loc)
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            yield from range_errors([info.annotation], getattr(value, name, None), (*loc, info.alias or name))
    elif isinstance(value, dict):
        items = [get_args(a)[1] for a in arms if get_origin(a) in _MAPPINGS and len(get_args(a)) == 2]
        for key, item in value.items():
            yield from range_errors(items, item, (*loc, key))
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            items = []
            for arm in arms:
                args = get_args(arm)
                if get_origin(arm) not in _SEQUENCES or not args:
                    continue
                fixed = get_origin(arm) is tuple and args[-1] is not Ellipsis
                items.append((args[index] if index < len(args) else None) if fixed else args[0])
            yield from range_errors([i for i in items if i is not None], item, (*loc, index))


# -- free-form JSON, NUL bytes, web addresses ---------------------------------------------------------------

MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16
MAX_URL = 2000


def json_problem(value: Any, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a JSON-like ``value`` is too big (serialized beyond ``max_bytes``) or too deep (beyond ``max_depth``
    levels), or None. Walks without recursion and stops at the first excess, so a huge value costs little."""
    excess = _json_excess(value, max_bytes, max_depth)
    if excess is None:
        return None
    return f"nested deeper than {max_depth} levels" if excess == "depth" else f"larger than {max_bytes} bytes as JSON"


def json_error(
    value: Any, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> InvalidValueError | None:
    """``json_problem`` as the error a validator raises (its text in the caller's language), or None."""
    excess = _json_excess(value, max_bytes, max_depth)
    if excess is None:
        return None
    if excess == "depth":
        return InvalidValueError(N_("the value is nested deeper than {depth} levels"), depth=max_depth)
    return InvalidValueError(N_("the value is larger than {limit} bytes as JSON"), limit=max_bytes)


def _json_excess(value: Any, max_bytes: int, max_depth: int) -> str | None:
    """Which limit a JSON-like ``value`` breaks first: ``depth`` or ``size`` (None: neither)."""
    size, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return "depth"
        if isinstance(item, dict):
            size += 2 + 2 * len(item)
            for key, inner in item.items():
                size += len(str(key).encode()) + 2
                stack.append((inner, depth + 1))
        elif isinstance(item, list | tuple | set | frozenset):
            size += 2 + len(item)
            stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            size += len(item.encode()) + 2
        else:
            size += len(json.dumps(item, default=str))
        if size > max_bytes:
            return "size"
    return None


def bounded_json(max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> AfterValidator:
    """A validator limiting a free-form JSON field's serialized size and depth (use in ``Annotated``)."""

    def check(value: Any) -> Any:
        error = json_error(value, max_bytes, max_depth)
        if error is not None:
            raise error
        return value

    return AfterValidator(check)


BoundedJson = Annotated[dict[str, Any], bounded_json()]
"""A free-form JSON object of at most ``MAX_JSON_BYTES`` serialized and ``MAX_JSON_DEPTH`` levels."""


def http_url(value: str) -> str:
    """``value`` when it is an absolute ``http``/``https`` address with a host, without a user name or password,
    spaces or control characters (at most ``MAX_URL`` characters); ``ValueError`` otherwise — never
    ``javascript:``, ``data:`` or ``file:``."""
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket, for one
        raise InvalidValueError(N_("must be an http or https address")) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InvalidValueError(N_("must be an http or https address"))
    if "@" in parts.netloc:  # https://www.gov.cn@evil.example/ reads as one host and goes to another
        raise InvalidValueError(N_("must not carry a user name or password"))
    try:
        hostname, _port = parts.hostname, parts.port
    except ValueError:  # a port that is no number
        raise InvalidValueError(N_("must be an http or https address")) from None
    if not hostname:
        raise InvalidValueError(N_("must be an http or https address"))
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidValueError(
            N_("must be at most {limit} characters, without spaces or control characters"), limit=MAX_URL
        )
    return url


def is_http_url(value: str | None) -> bool:
    """Whether ``value`` passes ``http_url`` (for filtering what is shown: old rows may hold anything)."""
    try:
        http_url(value or "")
    except ValueError:
        return False
    return True


HttpUrl = Annotated[str, AfterValidator(http_url)]
"""A web address: ``http`` or ``https`` only."""


def _free_form(arm: Any) -> bool:
    """Whether a plain type admits any JSON (``Any``, ``object``, or a ``dict``/``list`` of them)."""
    if arm is Any or arm is object:
        return True
    origin = get_origin(arm) or arm
    if origin in _MAPPINGS or origin in _SEQUENCES:
        args = [a for a in get_args(arm) if a is not Ellipsis]
        return not args or any(_free_form(a) for a in _arms(args[-1:]))
    return False


def _value_error(loc: tuple[int | str, ...], error: InvalidValueError) -> dict[str, Any]:
    """A validation error as pydantic reports a validator's ``ValueError``: its message in the caller's language."""
    return {"type": "value_error", "loc": loc, "msg": f"Value error, {error}", "input": None, "ctx": {"error": error}}


def input_errors(annotations: Iterable[Any], value: Any, loc: tuple[int | str, ...]) -> Iterator[dict[str, Any]]:
    """Errors for NUL bytes in any string of ``value`` and for free-form JSON in it beyond its limits."""
    arms = _arms(annotations)
    if isinstance(value, str):
        if "\x00" in value:
            yield _value_error(loc, InvalidValueError(N_("Text must not contain NUL (\\x00) characters")))
        return
    if any(_free_form(a) for a in arms) and isinstance(value, dict | list | tuple):
        error = json_error(value)
        if error is not None:
            yield _value_error(loc, error)
            return
    if isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            yield from input_errors([info.annotation], getattr(value, name, None), (*loc, info.alias or name))
    elif isinstance(value, dict):
        items = [get_args(a)[1] for a in arms if get_origin(a) in _MAPPINGS and len(get_args(a)) == 2] or [Any]
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                yield _value_error(loc, InvalidValueError(N_("Keys must not contain NUL characters")))
            yield from input_errors(items, item, (*loc, key))
    elif isinstance(value, list | tuple | set | frozenset):
        items = [a for arm in arms for a in get_args(arm)[:1] if get_origin(arm) in _SEQUENCES] or [Any]
        for index, item in enumerate(value):
            yield from input_errors(items, item, (*loc, index))


class BoundedField(ModelField):
    """A FastAPI parameter or body field whose integers must fit 64 bits, whose strings hold no NUL and whose
    free-form JSON keeps its limits — checked after pydantic's own validation so that every other rule (and
    its message) stays as declared."""

    def validate(
        self,
        value: Any,
        values: dict[str, Any] | None = None,
        *,
        loc: tuple[int | str, ...] = (),
    ) -> tuple[Any, list[dict[str, Any]]]:
        """Validate as declared, then refuse integers beyond 64 bits, NUL bytes and oversized free-form JSON."""
        result, errors = super().validate(value, values if values is not None else {}, loc=loc)
        if errors:
            return result, errors
        annotation = [self.field_info.annotation]
        wide = [*range_errors(annotation, result, loc), *input_errors(annotation, result, loc)]
        return (None, wide) if wide else (result, errors)


def _bounded(field: ModelField) -> ModelField:
    # every field: any of them may carry a string (a NUL) or free-form JSON
    if isinstance(field, BoundedField):
        return field
    # A copy sharing the field's validator: nothing is rebuilt, and the original is left as it was.
    bounded = BoundedField.__new__(BoundedField)
    bounded.__dict__.update(vars(field))
    return bounded


def _bound_dependant(dependant: Dependant, done: set[int]) -> None:
    if id(dependant) in done:
        return
    done.add(id(dependant))
    for fields in (
        dependant.path_params,
        dependant.query_params,
        dependant.header_params,
        dependant.cookie_params,
        dependant.body_params,
    ):
        # in place: the request handler already built holds these very lists
        fields[:] = [_bounded(f) for f in fields]
    for sub in dependant.dependencies:
        _bound_dependant(sub, done)


def bound_integer_inputs(app: FastAPI) -> int:
    """Bound every input of every route of ``app`` (call once its routers are included): integers to 64 bits,
    no NUL bytes, free-form JSON in size and depth; returns how many dependants (endpoints and their
    dependencies) were looked at."""
    done: set[int] = set()
    for context in iter_route_contexts(app.routes):
        # the route as included (prefix, router dependencies) and the route as declared
        for dependant in (getattr(context, "dependant", None), getattr(context.original_route, "dependant", None)):
            if isinstance(dependant, Dependant):
                _bound_dependant(dependant, done)
    return len(done)


def whole_number(raw: str | None, field: str) -> int | None:
    """A whole number typed into a form field (``None`` when left empty); anything else, or a number beyond
    64 bits, is an ``InvalidError`` naming ``field`` — for the pages that read their forms by hand."""
    text = (raw or "").strip()
    if not text:
        return None
    # ASCII digits only: str.isdigit() also passes "²", which int() then refuses
    if not (text.removeprefix("-").isascii() and text.removeprefix("-").isdigit()) or len(text) > 20:
        raise InvalidError(N_("a whole number is expected"), field=field)
    number = int(text)
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidError(
            N_("a whole number from {low} to {high} is expected"), field=field, low=INT64_MIN, high=INT64_MAX
        )
    return number
