"""Integer inputs bounded to 64 bits, once for every route.

``bound_integer_inputs(app)`` makes every parameter and body field an endpoint declares as ``int`` (query,
path, header, cookie, form and JSON, inside models, lists and dicts too) answer 422 beyond the signed 64-bit
range, through the same ``RequestValidationError`` — and so the same problem document naming the field —
as any other invalid input, rather than fail in the database as a 500 (SQLite cannot bind such a number,
PostgreSQL refuses it). Pages that read a form by hand use ``whole_number`` for the same rule.
"""

from __future__ import annotations

import collections.abc
import types
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, NewType, Union, get_args, get_origin

from fastapi import FastAPI
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel

from shgov.core.errors import InvalidError
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


def _holds_int(annotation: Any, seen: frozenset[type] = frozenset()) -> bool:
    """Whether a value of ``annotation`` can contain a declared ``int`` anywhere."""
    for arm in _arms([annotation]):
        if arm is int:
            return True
        if isinstance(arm, type) and issubclass(arm, BaseModel):
            if arm not in seen and any(_holds_int(f.annotation, seen | {arm}) for f in arm.model_fields.values()):
                return True
        elif any(_holds_int(arg, seen) for arg in get_args(arm) if arg is not Ellipsis):
            return True
    return False


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


class BoundedField(ModelField):
    """A FastAPI parameter or body field whose integers must fit 64 bits, checked after pydantic's own
    validation so that every other rule (and its message) stays as declared."""

    def validate(
        self,
        value: Any,
        values: dict[str, Any] | None = None,
        *,
        loc: tuple[int | str, ...] = (),
    ) -> tuple[Any, list[dict[str, Any]]]:
        """Validate as declared, then refuse integers beyond the signed 64-bit range."""
        result, errors = super().validate(value, values if values is not None else {}, loc=loc)
        if errors:
            return result, errors
        wide = list(range_errors([self.field_info.annotation], result, loc))
        return (None, wide) if wide else (result, errors)


def _bounded(field: ModelField) -> ModelField:
    if isinstance(field, BoundedField) or not _holds_int(field.field_info.annotation):
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
    """Bound every ``int`` input of every route of ``app`` (call once its routers are included); returns
    how many dependants (endpoints and their dependencies) were looked at."""
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
        raise InvalidError("a whole number is expected", field=field)
    number = int(text)
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidError(f"a whole number from {INT64_MIN} to {INT64_MAX} is expected", field=field)
    return number
