"""Rules as data: item conditions (申请条件预判), form show/require rules, and BPMN gateway conditions.

A rule is a JSON tree, never code::

    {"all": [rule, ...]}  {"any": [rule, ...]}  {"not": rule}
    {"fact": "applicant.age", "op": ">=", "value": 18}

Operators: ``== != < <= > >= in not_in contains not_contains present absent``. Facts are dotted names
looked up in a flat dict (``applicant.age``, ``applicant.household_district``, ``applicant.licences``,
``form.want_social_card`` …). A missing fact fails every comparison except ``absent``.

BPMN gateway conditions are written as small Python-like expressions (``want_social_card == True``)
because that is what BPMN modellers write; they are parsed with ``ast`` and only names, constants,
comparisons, ``and``/``or``/``not`` and lists are allowed: nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shgov.core.errors import InvalidError
from shgov.core.i18n import N_

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
    "contains": lambda a, b: b in a,
    "not_contains": lambda a, b: b not in a,
}
OPERATORS = (*_COMPARE, "present", "absent")
_MISSING = object()


def check_rule(rule: Any, where: str = "rule") -> None:
    """Refuse (naming ``where``) a rule that is not a well-formed tree."""
    if not isinstance(rule, dict) or not rule:
        raise InvalidError(N_("{where} must be an object"), field=where, where=where)
    if "all" in rule or "any" in rule:
        parts = rule.get("all", rule.get("any"))
        if not isinstance(parts, list) or not parts:
            raise InvalidError(N_("{where}: all/any takes a non-empty list"), field=where, where=where)
        for i, part in enumerate(parts):
            check_rule(part, f"{where}[{i}]")
        return
    if "not" in rule:
        check_rule(rule["not"], f"{where}.not")
        return
    fact, op = rule.get("fact"), rule.get("op")
    if not isinstance(fact, str) or not fact:
        raise InvalidError(N_("{where}: name the fact to test"), field=where, where=where)
    if op not in OPERATORS:
        raise InvalidError(
            N_("{where}: operator {op!r} is not one of {operators}"),
            field=where,
            where=where,
            op=op,
            operators=", ".join(OPERATORS),
        )
    if op not in ("present", "absent") and "value" not in rule:
        raise InvalidError(N_("{where}: {op} needs a value"), field=where, where=where, op=op)


def _present(value: Any) -> bool:
    return value is not _MISSING and value is not None and value != "" and value != []


def holds(rule: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    """True when ``rule`` holds for ``facts``."""
    if "all" in rule:
        return all(holds(part, facts) for part in rule["all"])
    if "any" in rule:
        return any(holds(part, facts) for part in rule["any"])
    if "not" in rule:
        return not holds(rule["not"], facts)
    value = facts.get(rule["fact"], _MISSING)
    op = rule["op"]
    if op == "present":
        return _present(value)
    if op == "absent":
        return not _present(value)
    if not _present(value):
        return False
    try:
        return bool(_COMPARE[op](value, rule["value"]))
    except TypeError:
        return False


@dataclass(frozen=True)
class Finding:
    """One condition and whether the applicant meets it, with the reason in plain Chinese."""

    message: str
    met: bool
    seen: str


def facts_used(rule: Mapping[str, Any]) -> list[str]:
    """Every fact a rule reads, in order."""
    if "all" in rule or "any" in rule:
        return [f for part in rule.get("all", rule.get("any", [])) for f in facts_used(part)]
    if "not" in rule:
        return facts_used(rule["not"])
    return [rule["fact"]]


def precheck(conditions: list[dict[str, Any]], facts: Mapping[str, Any]) -> list[Finding]:
    """Evaluate an item's conditions: each with its message and the values it looked at."""
    findings = []
    for condition in conditions:
        seen = ", ".join(f"{name}={_shown(facts.get(name))}" for name in dict.fromkeys(facts_used(condition["rule"])))
        findings.append(Finding(condition["message"], holds(condition["rule"], facts), seen))
    return findings


def _shown(value: Any) -> str:
    if value is None:
        return "无"
    if isinstance(value, list | tuple | set):
        return "、".join(str(v) for v in value) or "无"
    return str(value)


# -- gateway conditions --------------------------------------------------------------------------

_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.Compare,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
)


def parse_expression(text: str) -> ast.Expression:
    """Parse a gateway condition, refusing anything beyond names, constants, comparisons and boolean logic."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise InvalidError(
            N_("condition {text!r} is not an expression: {reason}"), field="bpmn", text=text, reason=exc.msg
        ) from exc
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise InvalidError(
                N_(
                    "condition {text!r} uses {node}; only names, constants, comparisons, "
                    "and/or/not and lists are allowed"
                ),
                field="bpmn",
                text=text,
                node=type(node).__name__,
            )
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise InvalidError(N_("condition {text!r} names {name}"), field="bpmn", text=text, name=node.id)
    return tree


_AST_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def evaluate_expression(text: str, data: Mapping[str, Any]) -> Any:
    """The value of a gateway condition over ``data`` (unknown names are ``None``)."""
    return _value(parse_expression(text).body, data)


def _value(node: ast.AST, data: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return {"True": True, "False": False, "None": None}.get(node.id, data.get(node.id))
    if isinstance(node, ast.List | ast.Tuple):
        return [_value(e, data) for e in node.elts]
    if isinstance(node, ast.UnaryOp):
        return not _value(node.operand, data)
    if isinstance(node, ast.BoolOp):
        values = (_value(v, data) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _value(node.left, data)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _value(comparator, data)
            try:
                if not _AST_COMPARE[type(op)](left, right):
                    return False
            except TypeError:
                return False
            left = right
        return True
    raise InvalidError(N_("cannot evaluate {node}"), field="bpmn", node=type(node).__name__)
