"""The policy language of 免申即享: conditions and amount formulas over register fields.

A small declarative language — comparison, ``and``/``or``/``not``, membership (``in [...]``), arithmetic,
``if … then … elif … else``, date functions such as ``age(birth_date)``, aggregates over related entities
(``count(household where age(birth_date) < 3)``) and references to other policies (``policy("code")``,
``amount("code")``). Text is parsed by Lark into a typed tree, checked against a :class:`Schema` (an unknown
field or a type error is reported with its line and column), and compiled to SQL that DuckDB and PostgreSQL
evaluate with the same results. Nothing is ever ``eval``-ed.

Numbers are exact: integers stay integers and decimals are carried as integers scaled by 10⁴, multiplied
and divided with round-half-up, so both engines (and any other implementation) agree to the fen. A missing
value (SQL NULL) makes a condition unknown, never true; a division by zero in the data gives a missing
value, a division by the literal 0 is refused when the policy is saved.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, cast

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from shgov.core.errors import DomainError, InvalidError
from shgov.core.i18n import N_

Type = Literal["int", "decimal", "bool", "text", "date"]
Dialect = Literal["duckdb", "postgresql"]
NUMERIC: frozenset[str] = frozenset({"int", "decimal"})
SCALE = 10_000  # decimals are integers of 1/10⁴
AGGREGATES = ("count", "sum", "min", "max", "any", "all")

GRAMMAR = r"""
?start: expr

?expr: or_
     | "if" expr "then" expr elif* "else" expr   -> cond
elif: "elif" expr "then" expr

?or_: and_
    | or_ "or" and_                -> or_op
?and_: not_
     | and_ "and" not_             -> and_op
?not_: compare
     | "not" not_                  -> not_op
?compare: sum
        | sum COMP sum             -> compare
        | sum "in" list            -> isin
        | sum "not" "in" list      -> notin
list: "[" [expr ("," expr)*] "]"
?sum: product
    | sum "+" product              -> add
    | sum "-" product              -> sub
?product: unary
        | product "*" unary        -> mul
        | product "/" unary        -> div
?unary: atom
      | "-" unary                  -> neg
?atom: NUMBER                      -> number
     | STRING                      -> string
     | "true"                      -> true
     | "false"                     -> false
     | AGG "(" NAME ("." NAME)? ("where" expr)? ")" -> aggregate
     | NAME "(" [expr ("," expr)*] ")" -> call
     | NAME                        -> name
     | "(" expr ")"

COMP: "==" | "!=" | "<=" | ">=" | "<" | ">"
AGG.2: /(count|sum|min|max|any|all)(?=\s*\()/
NAME: /(?!(and|or|not|in|if|then|elif|else|where|true|false|count|sum|min|max|any|all)\b)/ WORD
WORD: /[A-Za-z_\u4e00-\u9fff][A-Za-z0-9_\u4e00-\u9fff]*/
NUMBER: /\d+(\.\d+)?/
STRING: /"([^"\\\n]|\\.)*"/
COMMENT: /#[^\n]*/

%import common.WS
%ignore WS
%ignore COMMENT
"""

_PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


class PolicyError(InvalidError, ValueError):
    """A policy text that cannot be used, with where the problem is (1-based line and column) and in which
    part (``condition 2``, ``amount``).

    ``message`` is an English message id marked with ``N_``, its fields filled from ``params``;
    ``self.message`` and ``text`` are the bare message, ``placed`` and ``str`` put the part and place first."""

    def __init__(self, message: str, line: int = 0, column: int = 0, part: str = "", **params: Any) -> None:
        super().__init__(message, **params)
        self.line, self.column, self.part = line, column, part
        self.args = (self.placed().message,)

    def placed(self) -> DomainError:
        """This error with its part and place in front (``condition 1: line 1, column 5: …``), as an error to
        give as the reason of another."""
        reason: DomainError = self
        if self.line:
            reason = DomainError(
                N_("line {line}, column {column}: {reason}"), line=self.line, column=self.column, reason=reason
            )
        if self.part == "amount":
            reason = DomainError(N_("amount: {reason}"), reason=reason)
        elif self.part.startswith("condition "):
            reason = DomainError(N_("condition {number}: {reason}"), number=self.part.split()[-1], reason=reason)
        return reason


# -- the schema the language is checked against ---------------------------------------------------------


@dataclass(frozen=True)
class Relation:
    """Entities related to one entity: rows of ``target`` whose ``their_field`` equals its ``our_field``."""

    target: str
    our_field: str
    their_field: str
    description: str = ""
    one: bool = False  # ``their_field`` is the target's key: at most one related row


@dataclass(frozen=True)
class Entity:
    """An entity of the registers (person, enterprise): its key, typed fields and relations."""

    name: str
    key: str
    fields: dict[str, Type]
    relations: dict[str, Relation] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Schema:
    """The entities a policy may speak about."""

    entities: dict[str, Entity]

    def entity(self, name: str) -> Entity:
        """The entity called ``name``."""
        if name not in self.entities:
            raise PolicyError(
                N_("unknown target {name!r}; known: {known}"), name=name, known=", ".join(sorted(self.entities))
            )
        return self.entities[name]


# -- the typed tree -------------------------------------------------------------------------------------


@dataclass
class Node:
    """A checked expression: its kind, type, children and place in the source."""

    kind: str
    type: Type
    children: list[Node] = field(default_factory=list)
    value: object = None
    line: int = 0
    column: int = 0
    entity: str = ""  # for fields and aggregates: the entity whose rows they read
    relation: Relation | None = None
    text: str = ""  # the source text of the node

    def walk(self) -> Iterator[Node]:
        """This node and every node below it, outside-in (not into aggregates' inner expressions)."""
        yield self
        if self.kind != "aggregate":
            for child in self.children:
                yield from child.walk()


@dataclass(frozen=True)
class Source:
    """A policy's expressions as the checker needs them: which entity, its conditions and its amount."""

    code: str
    target: str
    conditions: tuple[str, ...]
    amount: str = "0"


Resolver = Callable[[str], Source | None]


@dataclass
class Checked:
    """A policy checked against the schema: one boolean tree per condition and a numeric amount tree."""

    source: Source
    conditions: list[Node]
    amount: Node
    references: set[str]  # the codes of the policies it refers to, directly


def _parse(text: str, part: str) -> Tree[Token]:
    if not text.strip():
        raise PolicyError(N_("empty expression"), 1, 1, part)
    try:
        return _PARSER.parse(text)
    except UnexpectedEOF as exc:
        lines = text.splitlines() or [""]
        raise PolicyError(N_("the expression ends too early"), len(lines), len(lines[-1]) + 1, part) from exc
    except UnexpectedToken as exc:
        if exc.token.type == "$END":
            lines = text.splitlines() or [""]
            raise PolicyError(N_("the expression ends too early"), len(lines), len(lines[-1]) + 1, part) from exc
        raise PolicyError(N_("unexpected {token!r}"), exc.line, exc.column, part, token=str(exc.token)) from exc
    except UnexpectedCharacters as exc:
        found = text[exc.pos_in_stream] if exc.pos_in_stream is not None else "?"
        raise PolicyError(N_("unexpected character {found!r}"), exc.line, exc.column, part, found=found) from exc
    except UnexpectedInput as exc:  # pragma: no cover - the cases above are the ones LALR raises
        raise PolicyError(N_("cannot read the expression"), exc.line, exc.column, part) from exc


FUNCTIONS: dict[str, str] = {
    "age": "age(date[, at]): whole years from date to at (default: the evaluation date)",
    "years_between": "years_between(a, b): whole years from date a to date b",
    "months_between": "months_between(a, b): whole months from date a to date b",
    "days_between": "days_between(a, b): days from date a to date b",
    "date": 'date("YYYY-MM-DD"): a date',
    "year": "year(date)",
    "month": "month(date)",
    "least": "least(a, b): the smaller number (missing if either is)",
    "greatest": "greatest(a, b): the larger number (missing if either is)",
    "missing": "missing(field): true when the register has no value",
    "coalesce": "coalesce(a, b): a, or b when a is missing",
    "policy": 'policy("code"): whether the entity qualifies under another policy',
    "amount": 'amount("code"): the amount another policy gives the entity (0 when it does not qualify)',
}
VARIABLES: dict[str, Type] = {"as_of": "date", "period_start": "date", "period_end": "date"}


class _Checker:
    def __init__(self, schema: Schema, resolve: Resolver, text: str, part: str, stack: tuple[str, ...]) -> None:
        self.schema, self.resolve, self.text, self.part, self.stack = schema, resolve, text, part, stack
        self.references: set[str] = set()

    def fail(self, message: str, tree: Tree[Token] | Token, **params: Any) -> PolicyError:
        line, column = _position(tree)
        return PolicyError(message, line, column, self.part, **params)

    def node(self, kind: str, type_: Type, tree: Tree[Token] | Token, *children: Node, **extra: object) -> Node:
        line, column = _position(tree)
        made = Node(kind, type_, list(children), line=line, column=column, **extra)  # type: ignore[arg-type]
        made.text = _slice(self.text, tree)
        return made

    def check(self, tree: Tree[Token] | Token, entity: Entity) -> Node:
        if isinstance(tree, Token):  # pragma: no cover - every token is wrapped by a rule
            raise self.fail(N_("unexpected token"), tree)
        method = getattr(self, f"_{tree.data}", None)
        if method is None:  # pragma: no cover - the grammar names every rule
            raise self.fail(N_("cannot check {rule}"), tree, rule=tree.data)
        result: Node = method(tree, entity)
        return result

    # literals and names
    def _number(self, tree: Tree[Token], entity: Entity) -> Node:
        raw = str(tree.children[0])
        if "." in raw:
            try:
                value = Decimal(raw)
            except InvalidOperation as exc:  # pragma: no cover - the lexer only passes digits
                raise self.fail(N_("not a number: {raw}"), tree, raw=raw) from exc
            if value.as_tuple().exponent < -4:  # type: ignore[operator]
                raise self.fail(N_("decimals have at most 4 places"), tree)
            return self.node("decimal", "decimal", tree, value=int(value * SCALE))
        return self.node("int", "int", tree, value=int(raw))

    def _string(self, tree: Tree[Token], entity: Entity) -> Node:
        raw = str(tree.children[0])[1:-1]
        return self.node("text", "text", tree, value=raw.replace('\\"', '"').replace("\\\\", "\\"))

    def _true(self, tree: Tree[Token], entity: Entity) -> Node:
        return self.node("bool", "bool", tree, value=True)

    def _false(self, tree: Tree[Token], entity: Entity) -> Node:
        return self.node("bool", "bool", tree, value=False)

    def _name(self, tree: Tree[Token], entity: Entity) -> Node:
        name = str(tree.children[0])
        if name in entity.fields:
            return self.node("field", entity.fields[name], tree, value=name, entity=entity.name)
        if name in VARIABLES:
            return self.node("variable", VARIABLES[name], tree, value=name)
        known = ", ".join(sorted(entity.fields))
        raise self.fail(
            N_("unknown field {name!r} of {entity} (fields: {known})"), tree, name=name, entity=entity.name, known=known
        )

    # operators
    def _bools(self, tree: Tree[Token], entity: Entity, kind: str) -> Node:
        subtrees = _subtrees(tree)
        children = [self.check(c, entity) for c in subtrees]
        for child, sub in zip(children, subtrees, strict=True):
            if child.type != "bool":
                raise self.fail(
                    N_("'{kind}' needs true/false on both sides, not {type}"), sub, kind=kind, type=child.type
                )
        return self.node(kind, "bool", tree, *children)

    def _or_op(self, tree: Tree[Token], entity: Entity) -> Node:
        return self._bools(tree, entity, "or")

    def _and_op(self, tree: Tree[Token], entity: Entity) -> Node:
        return self._bools(tree, entity, "and")

    def _not_op(self, tree: Tree[Token], entity: Entity) -> Node:
        return self._bools(tree, entity, "not")

    def _compare(self, tree: Tree[Token], entity: Entity) -> Node:
        left_tree, right_tree = _subtrees(tree)
        op = next(c for c in tree.children if isinstance(c, Token))
        left, right = self.check(left_tree, entity), self.check(right_tree, entity)
        if not _comparable(left.type, right.type):
            raise self.fail(N_("cannot compare {left} with {right}"), tree, left=left.type, right=right.type)
        if str(op) not in ("==", "!=") and left.type == "bool":
            raise self.fail(N_("'{op}' does not order true/false"), tree, op=str(op))
        return self.node("compare", "bool", tree, left, right, value=str(op))

    def _isin(self, tree: Tree[Token], entity: Entity, negate: bool = False) -> Node:
        left_tree, list_tree = _subtrees(tree)
        left = self.check(left_tree, entity)
        item_trees = _subtrees(list_tree)
        items = [self.check(c, entity) for c in item_trees]
        if not items:
            raise self.fail(N_("the list is empty"), list_tree)
        for item, sub in zip(items, item_trees, strict=True):
            if item.kind not in ("int", "decimal", "text", "bool", "date", "neg"):
                raise self.fail(N_("list items must be constants"), sub)
            if not _comparable(left.type, item.type):
                raise self.fail(N_("a {item} in a list of {left} values"), sub, item=item.type, left=left.type)
        return self.node("notin" if negate else "in", "bool", tree, left, *items)

    def _notin(self, tree: Tree[Token], entity: Entity) -> Node:
        return self._isin(tree, entity, negate=True)

    def _arith(self, tree: Tree[Token], entity: Entity, op: str) -> Node:
        left_tree, right_tree = _subtrees(tree)
        left, right = self.check(left_tree, entity), self.check(right_tree, entity)
        for side, sub in ((left, left_tree), (right, right_tree)):
            if side.type not in NUMERIC:
                raise self.fail(N_("'{op}' needs numbers, not {type}"), sub, op=op, type=side.type)
        if op == "/" and right.kind in ("int", "decimal") and right.value == 0:
            raise self.fail(N_("division by zero"), right_tree)
        type_: Type = "decimal" if op == "/" or "decimal" in (left.type, right.type) else "int"
        return self.node("arith", type_, tree, left, right, value=op)

    def _add(self, tree: Tree[Token], entity: Entity) -> Node:
        return self._arith(tree, entity, "+")

    def _sub(self, tree: Tree[Token], entity: Entity) -> Node:
        return self._arith(tree, entity, "-")

    def _mul(self, tree: Tree[Token], entity: Entity) -> Node:
        return self._arith(tree, entity, "*")

    def _div(self, tree: Tree[Token], entity: Entity) -> Node:
        return self._arith(tree, entity, "/")

    def _neg(self, tree: Tree[Token], entity: Entity) -> Node:
        (inner_tree,) = _subtrees(tree)
        inner = self.check(inner_tree, entity)
        if inner.type not in NUMERIC:
            raise self.fail(N_("'-' needs a number, not {type}"), tree, type=inner.type)
        return self.node("neg", inner.type, tree, inner)

    def _cond(self, tree: Tree[Token], entity: Entity) -> Node:
        parts: list[Tree[Token]] = []
        for child in tree.children:
            if isinstance(child, Tree) and child.data == "elif":
                parts.extend(c for c in child.children if isinstance(c, Tree))
            elif isinstance(child, Tree):
                parts.append(child)
        checked = [self.check(p, entity) for p in parts]
        tests, values = checked[0:-1:2], [*checked[1:-1:2], checked[-1]]
        for test, sub in zip(tests, parts[0:-1:2], strict=True):
            if test.type != "bool":
                raise self.fail(N_("'if' needs a true/false test, not {type}"), sub, type=test.type)
        types = {v.type for v in values}
        if types <= NUMERIC:
            type_: Type = "decimal" if "decimal" in types else "int"
        elif len(types) == 1:
            type_ = values[0].type
        else:
            raise self.fail(N_("the branches give different types: {types}"), tree, types=", ".join(sorted(types)))
        return self.node("if", type_, tree, *checked)

    def _call(self, tree: Tree[Token], entity: Entity) -> Node:
        name_token = tree.children[0]
        name = str(name_token)
        arg_trees = [c for c in tree.children[1:] if isinstance(c, Tree)]
        if name in AGGREGATES:
            raise self.fail(N_("{name}(…) takes a relation: {name}(relation where condition)"), tree, name=name)
        if name not in FUNCTIONS:
            raise self.fail(
                N_("unknown function {name!r} (functions: {known})"),
                name_token,
                name=name,
                known=", ".join(sorted(FUNCTIONS)),
            )
        if name in ("policy", "amount"):
            return self._reference(tree, name, arg_trees, entity)
        args = [self.check(a, entity) for a in arg_trees]
        types = [a.type for a in args]

        def want(*expected: tuple[str, ...]) -> None:
            if len(args) != len(expected) or any(t not in e for t, e in zip(types, expected, strict=False)):
                raise self.fail(N_("{usage} — given ({types})"), tree, usage=FUNCTIONS[name], types=", ".join(types))

        date_, number = ("date",), tuple(NUMERIC)
        if name == "age":
            if len(args) == 1:
                want(date_)
            else:
                want(date_, date_)
            return self.node("call", "int", tree, *args, value=name)
        if name in ("years_between", "months_between", "days_between"):
            want(date_, date_)
            return self.node("call", "int", tree, *args, value=name)
        if name == "date":
            if len(args) != 1 or args[0].kind != "text":
                raise self.fail(N_('date(…) takes a constant "YYYY-MM-DD"'), tree)
            try:
                day = dt.date.fromisoformat(str(args[0].value))
            except ValueError as exc:
                raise self.fail(N_("not a date: {value!r}"), arg_trees[0], value=args[0].value) from exc
            if not dt.date(1800, 1, 1) <= day <= dt.date(2200, 12, 31):
                raise self.fail(N_("date out of range: {day}"), arg_trees[0], day=day)
            return self.node("date", "date", tree, value=day)
        if name in ("year", "month"):
            want(date_)
            return self.node("call", "int", tree, *args, value=name)
        if name in ("least", "greatest"):
            want(number, number)
            type_: Type = "decimal" if "decimal" in types else "int"
            return self.node("call", type_, tree, *args, value=name)
        if name == "missing":
            if len(args) != 1 or args[0].kind != "field":
                raise self.fail(N_("missing(…) takes a field"), tree)
            return self.node("call", "bool", tree, *args, value=name)
        # coalesce
        if len(args) != 2 or not _comparable(types[0], types[1]):
            raise self.fail(N_("{usage} — given ({types})"), tree, usage=FUNCTIONS[name], types=", ".join(types))
        type_ = "decimal" if {types[0], types[1]} == {"int", "decimal"} else args[0].type
        return self.node("call", type_, tree, *args, value=name)

    def _reference(self, tree: Tree[Token], name: str, arg_trees: list[Tree[Token]], entity: Entity) -> Node:
        if len(arg_trees) != 1 or arg_trees[0].data != "string":
            raise self.fail(N_('{name}(…) takes a policy code in quotes: {name}("code")'), tree, name=name)
        code = str(arg_trees[0].children[0])[1:-1]
        if code in self.stack:
            cycle = " → ".join([*self.stack[self.stack.index(code) :], code])
            raise self.fail(N_("circular reference: {cycle}"), tree, cycle=cycle)
        other = self.resolve(code)
        if other is None:
            raise self.fail(N_("no policy {code!r}"), arg_trees[0], code=code)
        if other.target != entity.name:
            raise self.fail(
                N_("policy {code!r} is about {target}, not {entity}"),
                tree,
                code=code,
                target=other.target,
                entity=entity.name,
            )
        checked = check(self.schema, other, self.resolve, (*self.stack, code))
        self.references.add(code)
        inner = checked.conditions if name == "policy" else [*checked.conditions, checked.amount]
        return self.node("reference", "bool" if name == "policy" else "decimal", tree, *inner, value=code)

    def _aggregate(self, tree: Tree[Token], entity: Entity) -> Node:
        tokens = [c for c in tree.children if isinstance(c, Token)]
        function, relation_name = str(tokens[0]), str(tokens[1])
        value_name = str(tokens[2]) if len(tokens) > 2 else None
        where_trees = [c for c in tree.children if isinstance(c, Tree)]
        if function not in AGGREGATES:
            raise self.fail(
                N_("{function}(… where …) is not an aggregate; aggregates: {known}"),
                tree,
                function=function,
                known=", ".join(AGGREGATES),
            )
        relation = entity.relations.get(relation_name)
        if relation is None:
            known = ", ".join(sorted(entity.relations)) or "none"
            raise self.fail(
                N_("{entity} has no relation {relation!r} (relations: {known})"),
                tokens[1],
                entity=entity.name,
                relation=relation_name,
                known=known,
            )
        target = self.schema.entity(relation.target)
        children: list[Node] = []
        if where_trees:
            condition = self.check(where_trees[0], target)
            if condition.type != "bool":
                raise self.fail(N_("'where' needs a true/false condition"), where_trees[0])
            children.append(condition)
        if function in ("count", "any", "all"):
            if value_name is not None:
                raise self.fail(
                    N_("{function}({relation} where …) counts rows; it takes no field"),
                    tree,
                    function=function,
                    relation=relation_name,
                )
            if function in ("any", "all") and not children:
                raise self.fail(N_("{function}(…) needs 'where' and a condition"), tree, function=function)
            type_: Type = "int" if function == "count" else "bool"
            return self.node(
                "aggregate", type_, tree, *children, value=(function, None), entity=target.name, relation=relation
            )
        if value_name is None:
            raise self.fail(
                N_("{function}(…) needs a field: {function}({relation}.field where …)"),
                tree,
                function=function,
                relation=relation_name,
            )
        if value_name not in target.fields:
            raise self.fail(N_("unknown field {name!r} of {entity}"), tokens[2], name=value_name, entity=target.name)
        value_type = target.fields[value_name]
        if function == "sum" and value_type not in NUMERIC:
            raise self.fail(
                N_("sum(…) needs a number field, {name} is {type}"), tokens[2], name=value_name, type=value_type
            )
        if value_type == "bool":
            raise self.fail(N_("{function}(…) does not order true/false"), tokens[2], function=function)
        return self.node(
            "aggregate",
            value_type,
            tree,
            *children,
            value=(function, value_name),
            entity=target.name,
            relation=relation,
        )


def _subtrees(tree: Tree[Token]) -> list[Tree[Token]]:
    return [c for c in tree.children if isinstance(c, Tree)]


def _comparable(left: Type, right: Type) -> bool:
    return left == right or {left, right} <= NUMERIC


def _position(tree: Tree[Token] | Token) -> tuple[int, int]:
    if isinstance(tree, Token):
        return tree.line or 0, tree.column or 0
    meta = tree.meta
    return (getattr(meta, "line", 0), getattr(meta, "column", 0)) if not meta.empty else (0, 0)


def _slice(text: str, tree: Tree[Token] | Token) -> str:
    if isinstance(tree, Token):
        start, end = tree.start_pos, tree.end_pos
    elif tree.meta.empty:
        return ""
    else:
        start, end = tree.meta.start_pos, tree.meta.end_pos
    return text[start:end] if start is not None and end is not None else ""


def check(schema: Schema, source: Source, resolve: Resolver, stack: tuple[str, ...] | None = None) -> Checked:
    """Parse and type-check a policy's conditions (each true/false) and amount (a number) against the
    schema; references to other policies are checked too, and a cycle is an error."""
    stack = stack or (source.code,)
    entity = schema.entity(source.target)

    def resolve_here(code: str) -> Source | None:
        return source if code == source.code else resolve(code)

    conditions, references = [], set()
    for i, text in enumerate(source.conditions, start=1):
        checker = _Checker(schema, resolve_here, text, f"condition {i}", stack)
        node = checker.check(_parse(text, f"condition {i}"), entity)
        if node.type != "bool":
            raise PolicyError(
                N_("a condition must be true or false, this is {type}"), 1, 1, f"condition {i}", type=node.type
            )
        conditions.append(node)
        references |= checker.references
    checker = _Checker(schema, resolve_here, source.amount, "amount", stack)
    amount = checker.check(_parse(source.amount, "amount"), entity)
    if amount.type not in NUMERIC:
        raise PolicyError(N_("the amount must be a number, this is {type}"), 1, 1, "amount", type=amount.type)
    references |= checker.references
    return Checked(source, conditions, amount, references)


# -- SQL ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dates:
    """The dates a policy is evaluated at."""

    as_of: dt.date
    period_start: dt.date
    period_end: dt.date


OUTER = "t"  # the alias of the target's table in a compiled query


@dataclass
class _Group:
    """One relation's GROUP BY: its alias, the aggregates it computes, and the rows they read (``None``: all)."""

    name: str
    values: list[str] = field(default_factory=list)
    rows: list[str] | None = field(default_factory=list)


class _Joins:
    """What the population form joins to the outer entity: per relation one GROUP BY over the related table
    computing every aggregate the policies take of it (one hash aggregate and one join, however many
    aggregates), and the one-row relations joined directly. When every aggregate reads only the rows of a
    condition, only those rows are grouped: entities without any keep the aggregates' empty values, and the
    join builds on the few groups left (a household's babies, not every household)."""

    def __init__(self) -> None:
        self.grouped: dict[tuple[str, str, str], _Group] = {}  # (table, theirs, ours) → its GROUP BY
        self.rows: dict[tuple[str, str, str], str] = {}

    def _name(self) -> str:
        return f"j{len(self.grouped) + len(self.rows) + 1}"

    def value(self, table: str, theirs: str, ours: str, value: str, rows: str | None) -> str:
        """The column holding ``value`` (an aggregate over alias ``g`` of the rows where ``rows`` holds, or of
        all rows) grouped by ``theirs``."""
        group = self.grouped.get((table, theirs, ours))
        if group is None:
            group = self.grouped[(table, theirs, ours)] = _Group(self._name())
        if value not in group.values:
            group.values.append(value)
        if rows is None:
            group.rows = None
        elif group.rows is not None and rows not in group.rows:
            group.rows.append(rows)
        return f"{group.name}.v{group.values.index(value)}"

    def row(self, table: str, theirs: str, ours: str) -> str:
        """The alias of the related table's row joined on ``theirs`` = the outer entity's ``ours``."""
        return self.rows.setdefault((table, theirs, ours), self._name())

    def clause(self) -> str:
        """The LEFT JOINs, in the order the aggregates were first used."""
        parts = []
        for (table, theirs, ours), group in self.grouped.items():
            columns = ", ".join(f"{v} AS v{i}" for i, v in enumerate(group.values))
            where = f" WHERE {' OR '.join(group.rows)}" if group.rows else ""
            derived = f'(SELECT g."{theirs}" AS k, {columns} FROM {table} AS g{where} GROUP BY g."{theirs}")'
            parts.append(f' LEFT JOIN {derived} AS {group.name} ON {group.name}.k = {OUTER}."{ours}"')
        for (table, theirs, ours), name in self.rows.items():
            derived = f'(SELECT "{theirs}" AS k, * FROM {table})'
            parts.append(f' LEFT JOIN {derived} AS {name} ON {name}.k = {OUTER}."{ours}"')
        return "".join(parts)


LET = "__let"  # the prefix of the columns holding subexpressions computed once
_LET_REFERENCE = re.compile(rf'{OUTER}\."{LET}(\d+)"')
# what reads the same in every layer and costs nothing to repeat: the outer entity's columns and literals
_SIMPLE = re.compile(rf"""{OUTER}\."[^"]+"|CAST\(-?\d+ AS \w+\)|-?\d+|TRUE|FALSE|DATE '[\d-]+'""")
INT64_MAX = 2**63 - 1


class _Lets:
    """Subexpressions computed once each, in layers of nested SELECTs: a layer adds the columns whose
    expressions read only the table, the joins and the columns of the layers below it. DuckDB shares no
    subexpression inside CASE (and rounding reads its operand twice), so without them nested roundings and
    ``least``/``greatest`` repeat their operands, exponentially in the depth. One set of layers serves every
    policy of a query, so an expression two policies share is computed once."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # expression → column name
        self.levels: dict[str, int] = {}  # column name → layer (1 is computed over the table and joins)

    def bind(self, sql: str) -> str:
        """The column holding ``sql`` (added to the lowest layer where what it reads exists)."""
        name = self.names.get(sql)
        if name is None:
            # a text literal could look like a reference: that at most places the column a layer higher
            level = 1 + max((self.levels.get(f"{LET}{m}", 0) for m in _LET_REFERENCE.findall(sql)), default=0)
            name = f"{LET}{len(self.names)}"
            self.names[sql] = name
            self.levels[name] = level
        return f'{OUTER}."{name}"'

    def layered(self, select: str, source: str) -> str:
        """``SELECT select`` over ``source`` (the table as alias OUTER, its joins and conditions) with the
        bound columns computed underneath."""
        if not self.names:
            return f"SELECT {select} FROM {source}"
        layers: dict[int, list[str]] = {}
        for sql, name in self.names.items():
            layers.setdefault(self.levels[name], []).append(f'{sql} AS "{name}"')
        query = ""
        for level in range(1, max(layers) + 1):
            below = source if level == 1 else f"({query}) AS {OUTER}"
            query = f"SELECT {OUTER}.*, {', '.join(layers[level])} FROM {below}"
        return f"SELECT {select} FROM ({query}) AS {OUTER}"


class _Sql:
    """Renders checked expressions as SQL. With ``joins``, the aggregates of the outer entity become grouped
    derived tables joined once each (the fast form over a whole population, shared by all the policies of
    one query); without, correlated subqueries (the form for one entity)."""

    def __init__(
        self, dialect: Dialect, tables: dict[str, str], dates: Dates, lets: _Lets, joins: _Joins | None = None
    ) -> None:
        self.dialect, self.tables, self.dates, self.lets, self.joins = dialect, tables, dates, lets, joins
        self.aliases = 0

    def bind(self, sql: str, alias: str) -> str:
        """``sql`` computed once, when it is about the outer entity (not inside an aggregate's rows) and more
        than a column or a literal."""
        if alias != OUTER or _SIMPLE.fullmatch(sql):
            return sql
        return self.lets.bind(sql)

    # numbers: ints are BIGINT, decimals are integers of 1/10⁴ (HUGEINT in DuckDB, NUMERIC in PostgreSQL)
    @property
    def wide(self) -> str:
        return "HUGEINT" if self.dialect == "duckdb" else "NUMERIC"

    def half_up(self, n: str, d: str) -> str:
        """(2|n| + |d|) // 2|d|: |n| / |d| rounded half up (``n`` and ``d`` columns or literal digits).
        DuckDB divides 128-bit integers ~10× slower than 64-bit ones, so values that fit 64 bits (nearly all)
        are divided as such."""
        literal = d.isdigit()
        size, twice = (d, str(2 * int(d))) if literal else (f"ABS({d})", f"(2 * ABS({d}))")
        if self.dialect == "postgresql":
            return f"DIV(2 * ABS({n}) + {size}, {twice})"
        wide = f"((2 * ABS({n}) + {size}) // {twice})"
        if literal:
            fits = f"ABS({n}) <= {(INT64_MAX - int(d)) // 2}"
            narrow = f"(2 * CAST(ABS({n}) AS BIGINT) + {size}) // {twice}"
        else:  # 2·2⁶¹ + 2⁶¹ < 2⁶³
            fits = f"ABS({n}) <= {2**61} AND ABS({d}) <= {2**61}"
            small = f"CAST(ABS({d}) AS BIGINT)"
            narrow = f"(2 * CAST(ABS({n}) AS BIGINT) + {small}) // (2 * {small})"
        return f"(CASE WHEN {fits} THEN CAST({narrow} AS HUGEINT) ELSE {wide} END)"

    def rounded(self, numerator: str, denominator: str, alias: str) -> str:
        """numerator / denominator rounded half away from zero; missing when the denominator is 0."""
        n = self.bind(f"CAST(({numerator}) AS {self.wide})", alias)
        if denominator.isdigit() and int(denominator) > 0:  # a literal: no zero or sign to test at run time
            return f"(SIGN({n}) * {self.half_up(n, denominator)})"
        d = self.bind(f"CAST(({denominator}) AS {self.wide})", alias)
        quotient = self.half_up(n, d)
        return f"(CASE WHEN {d} = 0 THEN NULL ELSE SIGN({n}) * SIGN({d}) * {quotient} END)"

    def scaled(self, node: Node, alias: str) -> str:
        """A number as an integer of 1/10⁴."""
        sql = self.expr(node, alias)
        return f"(CAST(({sql}) AS {self.wide}) * {SCALE})" if node.type == "int" else sql

    def scaled_column(self, column: str) -> str:
        """A stored decimal as an integer of 1/10⁴ (scaled before the cast, which would drop the fraction; in
        DuckDB widened first, as a DECIMAL(18, 2) times 10⁴ may not fit 18 digits)."""
        if self.dialect == "duckdb":
            column = f"CAST(({column}) AS DECIMAL(38, 4))"
        return f"CAST(({column}) * {SCALE} AS {self.wide})"

    def literal_text(self, value: str) -> str:
        quoted = "'" + value.replace("'", "''") + "'"
        # the PostgreSQL form is run through SQLAlchemy's text(), where ":word" would be a parameter
        return quoted.replace(":", "\\:") if self.dialect == "postgresql" else quoted

    def literal_date(self, value: dt.date) -> str:
        return f"DATE '{value.isoformat()}'"

    def expr(self, node: Node, alias: str) -> str:
        kind = node.kind
        if kind == "int":
            return f"CAST({node.value} AS BIGINT)"
        if kind == "decimal":
            return f"CAST({node.value} AS {self.wide})"
        if kind == "text":
            return self.literal_text(str(node.value))
        if kind == "bool":
            return "TRUE" if node.value else "FALSE"
        if kind == "date":
            assert isinstance(node.value, dt.date)  # noqa: S101 - checked
            return self.literal_date(node.value)
        if kind == "field":
            column = f'{alias}."{node.value}"'
            return self.scaled_column(column) if node.type == "decimal" else column
        if kind == "variable":
            return self.literal_date(getattr(self.dates, str(node.value)))
        if kind in ("and", "or"):
            return "(" + f" {kind.upper()} ".join(self.expr(c, alias) for c in node.children) + ")"
        if kind == "not":
            return f"(NOT {self.expr(node.children[0], alias)})"
        if kind == "compare":
            left, right = node.children
            op = {"==": "=", "!=": "<>"}.get(str(node.value), str(node.value))
            if left.type != right.type:  # int with decimal
                return f"({self.scaled(left, alias)} {op} {self.scaled(right, alias)})"
            return f"({self.expr(left, alias)} {op} {self.expr(right, alias)})"
        if kind in ("in", "notin"):
            left, *items = node.children
            mixed = any(i.type != left.type for i in items)
            render = self.scaled if mixed else self.expr
            inner = ", ".join(render(i, alias) for i in items)
            return f"({render(left, alias)} {'NOT IN' if kind == 'notin' else 'IN'} ({inner}))"
        if kind == "arith":
            return self.arith(node, alias)
        if kind == "neg":
            return f"(-{self.expr(node.children[0], alias)})"
        if kind == "if":
            return self.case(node, alias)
        if kind == "call":
            return self.call(node, alias)
        if kind == "aggregate":
            return self.aggregate(node, alias)
        if kind == "reference":
            return self.reference(node, alias)
        raise PolicyError(N_("cannot compile {kind}"), kind=kind)  # pragma: no cover - every kind is above

    def arith(self, node: Node, alias: str) -> str:
        left, right = node.children
        op = str(node.value)
        if node.type == "int":
            return f"({self.expr(left, alias)} {op} {self.expr(right, alias)})"
        a, b = self.scaled(left, alias), self.scaled(right, alias)
        if op in ("+", "-"):
            return f"({a} {op} {b})"
        if op == "*":
            if "int" in (left.type, right.type):  # a whole number times a decimal stays exact
                whole, dec = (left, right) if left.type == "int" else (right, left)
                return f"(CAST({self.expr(whole, alias)} AS {self.wide}) * {self.expr(dec, alias)})"
            return self.rounded(f"{a} * {b}", str(SCALE), alias)
        if right.kind in ("int", "decimal"):  # dividing by a written number: its scaled value, as digits
            b = str(int(cast(int, right.value)) * (SCALE if right.kind == "int" else 1))
        return self.rounded(f"{a} * {SCALE}", b, alias)

    def case(self, node: Node, alias: str, render: Callable[[Node, str], str] | None = None) -> str:
        """An ``if`` as CASE, each branch rendered by ``render`` (by default as a value of the node's type)."""
        *pairs, otherwise = node.children
        render = render or (self.scaled if node.type == "decimal" else self.expr)
        whens = " ".join(
            f"WHEN {self.expr(pairs[i], alias)} THEN {render(pairs[i + 1], alias)}" for i in range(0, len(pairs), 2)
        )
        return f"(CASE {whens} ELSE {render(otherwise, alias)} END)"

    def _parts(self, date_sql: str) -> tuple[str, str, str]:
        return (
            f"CAST(EXTRACT(YEAR FROM {date_sql}) AS BIGINT)",
            f"CAST(EXTRACT(MONTH FROM {date_sql}) AS BIGINT)",
            f"CAST(EXTRACT(DAY FROM {date_sql}) AS BIGINT)",
        )

    def years(self, start: str, end: str) -> str:
        (y1, m1, d1), (y2, m2, d2) = self._parts(start), self._parts(end)
        return f"(({y2} - {y1}) - CASE WHEN ({m2} * 100 + {d2}) < ({m1} * 100 + {d1}) THEN 1 ELSE 0 END)"

    def months(self, start: str, end: str) -> str:
        (y1, m1, d1), (y2, m2, d2) = self._parts(start), self._parts(end)
        return f"((({y2} - {y1}) * 12 + ({m2} - {m1})) - CASE WHEN {d2} < {d1} THEN 1 ELSE 0 END)"

    def days(self, start: str, end: str) -> str:
        if self.dialect == "duckdb":
            return f"CAST(DATE_DIFF('day', CAST({start} AS DATE), CAST({end} AS DATE)) AS BIGINT)"
        return f"CAST((CAST({end} AS DATE) - CAST({start} AS DATE)) AS BIGINT)"

    def call(self, node: Node, alias: str) -> str:
        name = str(node.value)
        args = node.children
        # an age is read by many conditions of many policies: computed once
        if name == "age":
            at = self.expr(args[1], alias) if len(args) > 1 else self.literal_date(self.dates.as_of)
            return self.bind(self.years(self.expr(args[0], alias), at), alias)
        if name == "years_between":
            return self.bind(self.years(self.expr(args[0], alias), self.expr(args[1], alias)), alias)
        if name == "months_between":
            return self.bind(self.months(self.expr(args[0], alias), self.expr(args[1], alias)), alias)
        if name == "days_between":
            return self.days(self.expr(args[0], alias), self.expr(args[1], alias))
        if name in ("year", "month"):
            return f"CAST(EXTRACT({name.upper()} FROM {self.expr(args[0], alias)}) AS BIGINT)"
        if name == "missing":
            return f"({self.expr(args[0], alias)} IS NULL)"
        render = self.scaled if node.type == "decimal" else self.expr
        a, b = self.bind(render(args[0], alias), alias), self.bind(render(args[1], alias), alias)
        if name == "coalesce":
            return f"COALESCE({a}, {b})"
        op = "<=" if name == "least" else ">="
        return f"(CASE WHEN {a} IS NULL OR {b} IS NULL THEN NULL WHEN {a} {op} {b} THEN {a} ELSE {b} END)"

    def aggregate(self, node: Node, alias: str) -> str:
        if self.joins is not None and alias == OUTER:  # bound, as only the first layer sees the joins
            return self.lets.bind(self.grouped(node))
        function, value_name = cast("tuple[str, str | None]", node.value)
        relation = node.relation
        assert relation is not None  # noqa: S101 - set by the checker
        self.aliases += 1
        inner = f"r{self.aliases}"
        table = self.tables[relation.target]
        where = f'{inner}."{relation.their_field}" = {alias}."{relation.our_field}"'
        condition = self.expr(node.children[0], inner) if node.children else None
        if function == "any":
            return f"EXISTS (SELECT 1 FROM {table} AS {inner} WHERE {where} AND ({condition}) IS TRUE)"
        if function == "all":
            return f"NOT EXISTS (SELECT 1 FROM {table} AS {inner} WHERE {where} AND ({condition}) IS NOT TRUE)"
        if condition is not None:
            where += f" AND ({condition}) IS TRUE"
        if function == "count":
            return f"(SELECT CAST(COUNT(*) AS BIGINT) FROM {table} AS {inner} WHERE {where})"
        column, sql_type = self.value_column(node, inner, value_name)
        if function == "sum":
            return f"(SELECT CAST(COALESCE(SUM({column}), 0) AS {sql_type}) FROM {table} AS {inner} WHERE {where})"
        return f"(SELECT {function.upper()}({column}) FROM {table} AS {inner} WHERE {where})"

    def value_column(self, node: Node, alias: str, value_name: str | None) -> tuple[str, str]:
        """The column an aggregate reads (decimals scaled) and the SQL type of its sum."""
        column = f'{alias}."{value_name}"'
        if node.type == "decimal":
            return self.scaled_column(column), self.wide
        return column, "BIGINT"

    def grouped(self, node: Node) -> str:
        """An aggregate of the outer entity's relation as one GROUP BY over the related table, joined on the
        relation's key (the same values as the correlated form: no related row counts 0, sums 0, ``any`` is
        false and ``all`` true)."""
        assert self.joins is not None  # noqa: S101 - the caller checked
        function, value_name = cast("tuple[str, str | None]", node.value)
        relation = node.relation
        assert relation is not None  # noqa: S101 - set by the checker
        if relation.one:
            return self.joined(node, function, value_name, relation)
        inner = "g"
        condition = f"(({self.expr(node.children[0], inner)}) IS TRUE)" if node.children else None
        if function == "all":  # true unless a row fails: the rows read are the failing ones
            condition = f"(NOT {condition})"
        only = f" FILTER (WHERE {condition})" if condition else ""
        column, sql_type = self.value_column(node, inner, value_name)
        value, empty = {
            "count": (f"COUNT(*){only}", "CAST(0 AS BIGINT)"),
            "sum": (f"SUM({column}){only}", f"CAST(0 AS {sql_type})"),
            "min": (f"MIN({column}){only}", ""),
            "max": (f"MAX({column}){only}", ""),
            "any": (f"BOOL_OR({condition})", "FALSE"),
            "all": (f"BOOL_OR({condition})", "FALSE"),
        }[function]
        table = self.tables[relation.target]
        column = self.joins.value(table, relation.their_field, relation.our_field, value, condition)
        if function == "sum":
            return f"CAST(COALESCE({column}, {empty}) AS {sql_type})"
        if function == "all":
            return f"(NOT COALESCE({column}, FALSE))"
        return f"COALESCE({column}, {empty})" if empty else column

    def joined(self, node: Node, function: str, value_name: str | None, relation: Relation) -> str:
        """An aggregate over at most one related row: that row joined directly, no grouping."""
        assert self.joins is not None  # noqa: S101 - the caller checked
        name = self.joins.row(self.tables[relation.target], relation.their_field, relation.our_field)
        condition = f"({self.expr(node.children[0], name)}) IS TRUE" if node.children else "TRUE"
        hit = f"({name}.k IS NOT NULL AND {condition})"
        if function == "any":
            return hit
        if function == "all":
            return f"({name}.k IS NULL OR {condition})"
        if function == "count":
            return f"CAST(CASE WHEN {hit} THEN 1 ELSE 0 END AS BIGINT)"
        column, sql_type = self.value_column(node, name, value_name)
        if function == "sum":
            return f"CAST(CASE WHEN {hit} THEN COALESCE({column}, 0) ELSE 0 END AS {sql_type})"
        return f"(CASE WHEN {hit} THEN {column} END)"

    def reference(self, node: Node, alias: str) -> str:
        *conditions, last = node.children
        if node.type == "bool":
            return self.all_of([*conditions, last], alias)
        qualifies = self.all_of(conditions, alias) if conditions else "TRUE"
        amount = self.scaled(last, alias)
        return f"(CASE WHEN {qualifies} THEN {amount} ELSE CAST(0 AS {self.wide}) END)"

    def all_of(self, conditions: list[Node], alias: str) -> str:
        """True only when every condition is true (a missing value is not true)."""
        return "(" + " AND ".join(f"(({self.expr(c, alias)}) IS TRUE)" for c in conditions) + ")"


@dataclass(frozen=True)
class Column:
    """One column of a compiled policy's query and what it shows in a trace."""

    name: str
    label: str  # the source text, or the field name
    kind: Literal["condition", "value", "amount", "eligible"]
    type: Type


@dataclass(frozen=True)
class Compiled:
    """A policy as one SELECT over its target's table: the key, each condition (true/false/missing), the
    values the conditions read, whether the entity qualifies and the amount in fen."""

    sql: str
    key: str
    columns: tuple[Column, ...]
    one_entity_sql: str  # the same SELECT for one key (bound as $key in DuckDB, :key through SQLAlchemy)


def _population(select: list[str], table: str, joins: _Joins, lets: _Lets) -> str:
    """``select`` over every row of the target's table, the grouped aggregates and one-row relations joined."""
    return lets.layered(", ".join(select), f"{table} AS {OUTER}{joins.clause()}")


def _value(node: Node, sql: _Sql) -> str:
    return sql.expr(node, OUTER)


def _fen(node: Node, sql: _Sql) -> str:
    """A number in fen (rounded half away from zero). A written number is converted here and a choice rounds
    the branch it takes (the same value), so a fixed amount costs nothing per entity."""
    if node.kind in ("int", "decimal"):
        scaled = int(cast(int, node.value)) * (SCALE if node.kind == "int" else 1)
        fen = (2 * abs(scaled) + 100) // 200 * (1 if scaled >= 0 else -1)
        return f"CAST({fen} AS {sql.wide})"
    if node.kind == "if":
        return sql.case(node, OUTER, lambda branch, _alias: _fen(branch, sql))
    return sql.rounded(sql.scaled(node, OUTER), "100", OUTER)


def _outcome(checked: Checked, sql: _Sql) -> tuple[str, str]:
    """Whether an entity qualifies (every condition true) and the amount in fen (NULL when it does not)."""
    conditions = [_value(c, sql) for c in checked.conditions]
    eligible = "(" + " AND ".join(f"(({c}) IS TRUE)" for c in conditions) + ")" if conditions else "TRUE"
    eligible = sql.bind(eligible, OUTER)
    amount = _fen(checked.amount, sql)
    return eligible, f"(CASE WHEN {eligible} THEN CAST({amount} AS BIGINT) ELSE NULL END)"


def _select(checked: Checked, sql: _Sql) -> tuple[list[str], list[Column]]:
    select: list[str] = []
    columns: list[Column] = []
    for i, condition in enumerate(checked.conditions):
        select.append(f"{_value(condition, sql)} AS c{i}")
        columns.append(Column(f"c{i}", condition.text, "condition", "bool"))
    seen: list[str] = []
    for node in [n for c in checked.conditions for n in c.walk()] + list(checked.amount.walk()):
        if node.kind in ("field", "aggregate") and node.text not in seen:
            seen.append(node.text)
            name = f"v{len(seen) - 1}"
            value_sql = _fen(node, sql) if node.type == "decimal" else sql.expr(node, OUTER)
            select.append(f"{value_sql} AS {name}")
            columns.append(Column(name, node.text, "value", node.type))
    eligible, fen = _outcome(checked, sql)
    select.append(f"{eligible} AS eligible")
    columns.append(Column("eligible", "", "eligible", "bool"))
    select.append(f"{fen} AS amount_fen")
    columns.append(Column("amount_fen", checked.amount.text, "amount", "int"))
    return select, columns


def compile_policy(
    checked: Checked, schema: Schema, dialect: Dialect, tables: dict[str, str], dates: Dates
) -> Compiled:
    """The SQL that evaluates a checked policy over every entity of its target (aggregates grouped and
    joined), and the same columns for one entity (aggregates as correlated subqueries, which read only that
    entity's related rows)."""
    entity = schema.entity(checked.source.target)
    key = f'{OUTER}."{entity.key}"'
    joins, lets = _Joins(), _Lets()
    select, columns = _select(checked, _Sql(dialect, tables, dates, lets, joins))
    body = _population([f"{key} AS entity_key", *select], tables[entity.name], joins, lets)
    lets = _Lets()
    one_select, _columns = _select(checked, _Sql(dialect, tables, dates, lets))
    one = lets.layered(
        ", ".join([f"{key} AS entity_key", *one_select]),
        f"{tables[entity.name]} AS {OUTER} WHERE {key} = {'$key' if dialect == 'duckdb' else ':key'}",
    )
    return Compiled(body, entity.key, tuple(columns), one)


def compile_many(
    policies: list[tuple[Checked, Dates]], schema: Schema, dialect: Dialect, tables: dict[str, str]
) -> str:
    """Several policies about one target as one SELECT — one pass over the population, each distinct
    aggregate computed once: ``entity_key``, then for the i-th policy ``e{i}`` (qualifies) and ``a{i}`` (the
    amount in fen, NULL when it does not)."""
    targets = {checked.source.target for checked, _dates in policies}
    if len(targets) != 1:
        raise PolicyError(N_("compile_many takes policies about one target"))
    entity = schema.entity(targets.pop())
    joins, lets = _Joins(), _Lets()
    select = [f'{OUTER}."{entity.key}" AS entity_key']
    for i, (checked, dates) in enumerate(policies):
        eligible, fen = _outcome(checked, _Sql(dialect, tables, dates, lets, joins))
        select.append(f"{eligible} AS e{i}")
        select.append(f"{fen} AS a{i}")
    return _population(select, tables[entity.name], joins, lets)
