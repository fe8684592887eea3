"""Every message a person can be shown is translatable: domain errors and problem details are English message
ids marked with ``N_`` whose fields are all given, and the Chinese catalogue holds every message the code and
the templates use, with the same fields (issue #27, point 5)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import string
from collections.abc import Iterator
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

import shgov.app
from shgov.core.errors import DomainError
from shgov.core.i18n import LOCALE_DIR

SOURCE = Path(shgov.app.__file__).resolve().parent
ROOT = SOURCE.parent.parent
# Every module, so that every DomainError subclass is known whichever tests ran before in this process.
for module in pkgutil.walk_packages([str(SOURCE)], "shgov."):
    if ".migrations" not in module.name:
        importlib.import_module(module.name)


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _takes_a_message(cls: type) -> bool:
    """Whether ``cls(...)`` takes the message id first (a subclass with its own arguments marks its message
    inside, where the catalogue test finds it)."""
    parameters = list(inspect.signature(cls.__init__).parameters)
    return parameters[1:2] == ["message"]


ERRORS = {c.__name__ for c in _subclasses(DomainError) if _takes_a_message(c)} | {"DomainError", "InvalidValueError"}


def _name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _message(call: ast.Call, name: str) -> ast.expr | None:
    """The message argument of an error or problem construction (None: none given)."""
    position, keyword = (1, "detail") if name == "Problem" else (0, "message")
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _given(call: ast.Call, name: str) -> set[str] | None:
    """The fields a construction fills in (None: not knowable here, such as ``**params``)."""
    if name != "Problem":
        if any(k.arg is None for k in call.keywords):
            return None
        return {k.arg for k in call.keywords if k.arg is not None}
    params = next((k.value for k in call.keywords if k.arg == "params"), None)
    if params is None:
        return set()
    if isinstance(params, ast.Dict) and all(isinstance(k, ast.Constant) for k in params.keys):
        return {str(k.value) for k in params.keys if isinstance(k, ast.Constant)}
    return None


def fields(template: str) -> set[str]:
    """The names of the ``str.format`` fields of ``template``."""
    return {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f}


def test_every_error_message_is_a_marked_template_with_its_fields_given() -> None:
    offenders: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node)
            if name not in ERRORS and name != "Problem":
                continue
            message = _message(node, name)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if message is None or isinstance(message, ast.Name | ast.Attribute | ast.Subscript):
                continue  # none, or a message id held in a name (checked where it is marked)
            marked = (
                isinstance(message, ast.Call)
                and isinstance(message.func, ast.Name)
                and message.func.id == "N_"
                and len(message.args) == 1
                and isinstance(message.args[0], ast.Constant)
                and isinstance(message.args[0].value, str)
            )
            if not marked:
                offenders.append(f"{where}: {name} with a message that is not N_('…')")
                continue
            assert isinstance(message, ast.Call)
            assert isinstance(message.args[0], ast.Constant)
            given = _given(node, name)
            missing = fields(str(message.args[0].value)) - (given or set())
            if given is not None and missing:
                offenders.append(f"{where}: {name} does not give {', '.join(sorted(missing))}")
    assert offenders == []


def test_the_chinese_catalogue_holds_every_message_with_the_same_fields() -> None:
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    options = {"**/templates/**.html": {"trim_blocks": "true", "lstrip_blocks": "true"}}
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    used: dict[str, str] = {}
    for filename, _, message, _, _ in extract_from_dir(str(SOURCE), method_map, options, keywords=keywords):
        if isinstance(message, str) and message:
            used.setdefault(message, filename)
    with (LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalogue = {str(m.id): str(m.string) for m in read_po(f) if m.id and isinstance(m.id, str)}
    untranslated = sorted(f"{used[m]}: {m}" for m in used if not catalogue.get(m))
    assert untranslated == []
    differing = sorted(
        f"{m!r} → {catalogue[m]!r}" for m in used if "{" in m and catalogue.get(m) and fields(m) != fields(catalogue[m])
    )
    assert differing == []
