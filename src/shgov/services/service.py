"""一网通办's catalogue side: items, the field dictionary, bundles, merged guides and forms, prefill,
pre-check (申请条件预判) and material pre-review (材料预审).

An *offering* is what a person applies for: a bundle (一件事) or a single item (which gets a
generated three-step process). From its items SH-GOV derives one guide (conditions and materials
merged and de-duplicated), one form (each item's fields mapped to the shared field dictionary, so a
field is asked once), and the BPMN process the cases context runs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from shgov.core import text
from shgov.core.errors import InvalidError, NotFoundError, validation_message
from shgov.core.i18n import N_
from shgov.core.identity.permissions import register_action
from shgov.core.identity.service import find_user
from shgov.core.ids import IdentifierError, birth_date, validate_id_number, validate_phone, validate_uscc
from shgov.core.orgs.service import MUNICIPAL_DEPARTMENTS
from shgov.core.settings import Settings
from shgov.registers import service as registers
from shgov.services import process, rules
from shgov.services.models import Bundle, FieldDef, ServiceItem
from shgov.services.schemas import BundleIn, FieldDefIn, ItemIn

MANAGE = register_action("services.item.manage", N_("Manage service items, bundles and the field dictionary"))
DATA = Path(__file__).parent / "data"
NECESSITY_ORDER = {"必须": 0, "容缺": 1, "非必须": 2}
DEPARTMENT_KEYS = {key for key, *_ in MUNICIPAL_DEPARTMENTS}
DEPARTMENT_NAMES = {key: short for key, _full, short, _pattern in MUNICIPAL_DEPARTMENTS}
LIFE_EVENTS = ("出生", "入学", "就业", "开办企业", "婚育", "居住", "购房", "医疗", "养老", "退休", "残疾人", "救助")
USABLE_LEVELS = ("A", "B")  # licences that stand in for a material without an original being shown


class Reason(InvalidError):  # noqa: N818 - a message part, never raised
    """Pydantic's message for an imported item or bundle, said in a language (``say(locale)``), to fill a field
    of another message: a parameter that is a ``DomainError`` is rendered in the reader's language."""

    def __init__(self, say: Callable[[str], str]) -> None:
        super().__init__(N_("{reason}"), reason=say("en"))
        self.say = say

    def text(self, locale: str) -> str:
        """The reason in ``locale``."""
        return self.say(locale)


def _pydantic_error(exc: ValidationError, prefix: str = "") -> InvalidError:
    first = exc.errors()[0]
    where = prefix + ".".join(str(p) for p in first["loc"])
    return InvalidError(
        N_("{where}: {reason}"),
        field=where or None,
        where=where,
        reason=Reason(lambda locale: validation_message(first, locale)),
    )


# -- the field dictionary ---------------------------------------------------------------------------


def save_field(session: Session, data: dict[str, Any]) -> FieldDef:
    """Create or replace a shared field."""
    try:
        parsed = FieldDefIn.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_error(exc) from exc
    row = session.get(FieldDef, parsed.code) or FieldDef(code=parsed.code)
    for name, value in parsed.model_dump().items():
        setattr(row, name, value)
    session.add(row)
    session.flush()
    return row


def field_dictionary(session: Session) -> dict[str, FieldDef]:
    """Every shared field by code."""
    return {f.code: f for f in session.scalars(select(FieldDef).order_by(FieldDef.code))}


# -- items ------------------------------------------------------------------------------------------


def save_item(session: Session, data: dict[str, Any], dictionary: dict[str, FieldDef] | None = None) -> ServiceItem:
    """Create an item, or replace it as a new version; every field must be in the dictionary."""
    try:
        parsed = ItemIn.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_error(exc) from exc
    if parsed.department_key not in DEPARTMENT_KEYS:
        raise InvalidError(N_("no department {key!r}"), field="department_key", key=parsed.department_key)
    dictionary = dictionary if dictionary is not None else field_dictionary(session)
    for i, f in enumerate(parsed.fields):
        if f.dictionary not in dictionary:
            raise InvalidError(
                N_("field {name!r} maps to {code!r}, not in the dictionary"),
                field=f"fields.{i}",
                name=f.name,
                code=f.dictionary,
            )
    for i, m in enumerate(parsed.materials):
        if m.source == "政府部门核发" and not m.licence_type:
            raise InvalidError(
                N_("material {name!r} comes from a department: name its licence type"),
                field=f"materials.{i}",
                name=m.name,
            )
    values = parsed.model_dump()
    row = session.scalar(select(ServiceItem).where(ServiceItem.code == parsed.code))
    if row is None:
        row = ServiceItem(**values)
        session.add(row)
    else:
        changed = any(getattr(row, k) != v for k, v in values.items())
        for name, value in values.items():
            setattr(row, name, value)
        if changed:
            row.version += 1
    session.flush()
    return row


def get_item(session: Session, code: str) -> ServiceItem:
    """An item by code (``NotFoundError`` when there is none)."""
    row = session.scalar(select(ServiceItem).where(ServiceItem.code == code))
    if row is None:
        raise NotFoundError(N_("no service item {code}"), field="code", code=code)
    return row


def list_items(session: Session, department_key: str | None = None) -> list[ServiceItem]:
    """Every item, by department then code."""
    query = select(ServiceItem).order_by(ServiceItem.department_key, ServiceItem.code)
    if department_key:
        query = query.where(ServiceItem.department_key == department_key)
    return list(session.scalars(query))


EXPORT_COLUMNS = tuple(ItemIn.model_fields)
NESTED = ("conditions", "materials", "fields", "fee", "channels", "life_events", "offline")


def export_items(session: Session) -> list[dict[str, Any]]:
    """Every item as the import format (JSON-ready dicts)."""
    return [{c: getattr(item, c) for c in EXPORT_COLUMNS} for item in list_items(session)]


def items_to_csv(rows: list[dict[str, Any]]) -> str:
    """Items as CSV: one row each; nested parts (materials, conditions …) as JSON in their cell."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: json.dumps(row[k], ensure_ascii=False) if k in NESTED else ("" if row[k] is None else row[k])
                for k in EXPORT_COLUMNS
            }
        )
    return out.getvalue()


def items_from_csv(content: str) -> list[dict[str, Any]]:
    """Parse the CSV form of ``items_to_csv`` (a bad JSON cell is refused with its row and column)."""
    reader = csv.DictReader(io.StringIO(content.lstrip("\ufeff")))
    missing = {"code", "name"} - set(reader.fieldnames or [])
    if missing:
        raise InvalidError(N_("the CSV lacks the columns {columns}"), field="file", columns=", ".join(sorted(missing)))
    rows = []
    for number, raw in enumerate(reader, start=2):
        row: dict[str, Any] = {}
        for key, value in raw.items():
            if key is None or key not in EXPORT_COLUMNS:
                continue
            if key in NESTED:
                try:
                    row[key] = (
                        json.loads(value)
                        if value
                        else ([] if key in ("conditions", "materials", "fields", "life_events") else {})
                    )
                except json.JSONDecodeError as exc:
                    raise InvalidError(
                        N_("row {number}, column {column}: not JSON ({reason})"),
                        field=key,
                        number=number,
                        column=key,
                        reason=exc.msg,
                    ) from exc
            elif value == "" and key in ("result_licence_type", "result_validity_years"):
                row[key] = None
            else:
                row[key] = value
        rows.append(row)
    return rows


def import_items(session: Session, rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Import items all-or-nothing: the first bad row refuses the whole file (with its row number)."""
    dictionary = field_dictionary(session)
    before = {i.code: i.version for i in list_items(session)}
    codes: set[str] = set()
    with session.begin_nested():
        for number, row in enumerate(rows, start=1):
            if row.get("code") in codes:
                raise InvalidError(
                    N_("item {number}: code {code} appears twice"), field="code", number=number, code=row.get("code")
                )
            codes.add(str(row.get("code")))
            try:
                save_item(session, row, dictionary)
            except InvalidError as exc:
                raise InvalidError(
                    N_("item {number} ({code}): {reason}"),
                    field=exc.field,
                    number=number,
                    code=row.get("code"),
                    reason=exc,
                ) from exc
    after = {i.code: i.version for i in list_items(session)}
    created = sum(1 for c in codes if c not in before)
    updated = sum(1 for c in codes if c in before and after[c] != before[c])
    return {"created": created, "updated": updated, "unchanged": len(codes) - created - updated}


# -- bundles ----------------------------------------------------------------------------------------


def save_bundle(session: Session, data: dict[str, Any]) -> Bundle:
    """Create or replace a bundle after checking its items, fields, rules and BPMN process."""
    try:
        parsed = BundleIn.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_error(exc) from exc
    known = {i.code for i in session.scalars(select(ServiceItem).where(ServiceItem.code.in_(parsed.item_codes)))}
    unknown = [c for c in parsed.item_codes if c not in known]
    if unknown:
        raise InvalidError(N_("no service items {codes}"), field="item_codes", codes=", ".join(unknown))
    if parsed.accepting_department_key not in DEPARTMENT_KEYS:
        raise InvalidError(
            N_("no department {key!r}"), field="accepting_department_key", key=parsed.accepting_department_key
        )
    stray = [c for c in [*parsed.item_rules, *parsed.tasks.values()] if c not in parsed.item_codes]
    if stray:
        raise InvalidError(N_("{codes} are not items of the bundle"), field="tasks", codes=", ".join(stray))
    dictionary = field_dictionary(session)
    for i, section in enumerate(parsed.sections):
        for name in section.fields:
            if name not in dictionary:
                raise InvalidError(
                    N_("section {section} names {name!r}, not in the dictionary"),
                    field=f"sections.{i}",
                    section=section.code,
                    name=name,
                )
    process.validate(parsed.bpmn, parsed.process_id, parsed.tasks)
    values = parsed.model_dump()
    row = session.scalar(select(Bundle).where(Bundle.code == parsed.code))
    if row is None:
        row = Bundle(**values)
        session.add(row)
    else:
        if any(getattr(row, k) != v for k, v in values.items()):
            row.version += 1
        for name, value in values.items():
            setattr(row, name, value)
    session.flush()
    return row


def list_bundles(session: Session) -> list[Bundle]:
    """Every bundle."""
    return list(session.scalars(select(Bundle).order_by(Bundle.code)))


def _text(data: bytes, field: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidError(N_("the file is not UTF-8 text"), field=field) from exc


def _json(content: str, field: str) -> Any:
    try:
        return json.loads(content)
    except json.JSONDecodeError as exc:
        raise InvalidError(
            N_("not JSON: {reason} (line {line})"), field=field, reason=exc.msg, line=exc.lineno
        ) from exc


def parse_items_file(filename: str, data: bytes, field: str = "file") -> list[dict[str, Any]]:
    """The item rows of an uploaded export: CSV by its ``.csv`` name, JSON (a list of items) otherwise."""
    content = _text(data, field)
    if filename.lower().endswith(".csv"):
        return items_from_csv(content)
    rows = _json(content, field)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InvalidError(N_("the JSON must be a list of items"), field=field)
    return rows


def parse_bundles(
    definition: bytes, bpmn_files: Mapping[str, bytes], field: str = "definition"
) -> list[dict[str, Any]]:
    """Bundles from a JSON definition (one bundle or a list) whose ``bpmn`` entries are BPMN XML or name one
    of ``bpmn_files`` (file name → content)."""
    entries = _json(_text(definition, field), field)
    listed = entries if isinstance(entries, list) else [entries]
    if not listed or not all(isinstance(e, dict) for e in listed):
        raise InvalidError(N_("the definition must be a bundle object or a list of them"), field=field)
    for entry in listed:
        ref = entry.get("bpmn")
        if isinstance(ref, str) and ref.strip().endswith(".bpmn"):
            name = ref.strip().rsplit("/", 1)[-1]
            if name not in bpmn_files:
                raise InvalidError(
                    N_("bundle {code!r} names {name}, which was not given"),
                    field="bpmn",
                    code=entry.get("code"),
                    name=name,
                )
            entry["bpmn"] = _text(bpmn_files[name], "bpmn")
    return listed


def load_bundle_file(path: Path) -> list[dict[str, Any]]:
    """Bundles from a JSON file whose ``bpmn`` entries name BPMN files beside it."""
    files = {p.name: p.read_bytes() for p in path.parent.glob("*.bpmn")}
    return parse_bundles(path.read_bytes(), files, str(path))


# The process helpers the cases context runs bundles with.
process_digest = process.digest
start_process = process.start
dump_process = process.dump
load_process = process.load


# -- offerings: what a person applies for -----------------------------------------------------------


@dataclass
class Offering:
    """A bundle, or a single item, with everything needed to guide, form, check and process it."""

    kind: str  # bundle | item
    code: str
    name: str
    description: str
    target: str
    items: list[ServiceItem]
    sections: list[dict[str, Any]]
    item_rules: dict[str, Any]
    tasks: dict[str, str]
    conditions: list[dict[str, Any]]
    accepting_department_key: str
    promised_days: int
    bpmn: str
    process_id: str
    version: int
    life_events: list[str] = field(default_factory=list)

    def item(self, code: str) -> ServiceItem:
        """One of the offering's items."""
        return next(i for i in self.items if i.code == code)


def offering(session: Session, kind: str, code: str) -> Offering:
    """The bundle or item ``code`` as an offering (only active ones can be applied for)."""
    if kind == "bundle":
        bundle = session.scalar(select(Bundle).where(Bundle.code == code))
        if bundle is None or bundle.status != "active":
            raise NotFoundError(N_("no bundle {code}"), field="code", code=code)
        by_code = {
            i.code: i for i in session.scalars(select(ServiceItem).where(ServiceItem.code.in_(bundle.item_codes)))
        }
        return Offering(
            "bundle",
            bundle.code,
            bundle.name,
            bundle.description,
            bundle.target,
            [by_code[c] for c in bundle.item_codes],
            bundle.sections,
            bundle.item_rules,
            bundle.tasks,
            bundle.conditions,
            bundle.accepting_department_key,
            bundle.promised_days,
            bundle.bpmn,
            bundle.process_id,
            bundle.version,
            bundle.life_events,
        )
    if kind != "item":
        raise NotFoundError(N_("nothing of kind {kind!r}"), field="kind", kind=kind)
    item = get_item(session, code)
    if item.status != "active":
        raise NotFoundError(N_("item {code} is suspended"), field="code", code=code)
    bpmn, process_id, tasks = process.single_item(item.code, item.name)
    return Offering(
        "item",
        item.code,
        item.name,
        item.procedure,
        item.target,
        [item],
        [],
        {},
        tasks,
        [],
        item.department_key,
        item.promised_days,
        bpmn,
        process_id,
        item.version,
        item.life_events,
    )


# -- the merged form (一表申请) ------------------------------------------------------------------------


@dataclass(frozen=True)
class FormField:
    """A field as the merged form asks it."""

    code: str
    label: str
    kind: str
    options: tuple[str, ...]
    max_length: int
    required: bool
    prefill: str | None
    hint: str
    personal: bool


@dataclass(frozen=True)
class FormSection:
    """A section of the merged form; ``show_if``/``require_if`` are rules over ``form.<field>`` facts."""

    code: str
    title: str
    fields: tuple[FormField, ...]
    show_if: dict[str, Any] | None = None
    require_if: dict[str, Any] | None = None


APPLICANT_FIELDS = ("applicant_name", "applicant_id_number", "applicant_phone", "applicant_address")
ENTERPRISE_FIELDS = ("enterprise_name", "enterprise_credit_code", "legal_representative_name", "contact_phone")


def form_for(session: Session, offer: Offering) -> list[FormSection]:
    """The one form of an offering: every item field mapped to its shared field, asked once."""
    dictionary = field_dictionary(session)
    required: dict[str, bool] = {}
    origin: dict[str, str] = {}
    for item in offer.items:
        for f in item.fields:
            code = f["dictionary"]
            # A field is required if any item that is always included requires it.
            always = item.code not in offer.item_rules
            required[code] = required.get(code, False) or (bool(f.get("required")) and always)
            origin.setdefault(code, item.code)

    def make(code: str, force_required: bool | None = None) -> FormField:
        d = dictionary[code]
        return FormField(
            d.code,
            d.label,
            d.kind,
            tuple(d.options),
            d.max_length,
            required.get(code, False) if force_required is None else force_required,
            d.prefill,
            d.hint,
            d.personal,
        )

    placed: set[str] = set()
    sections: list[FormSection] = []
    who = APPLICANT_FIELDS if offer.target == "person" else ENTERPRISE_FIELDS
    title = "申请人信息" if offer.target == "person" else "企业信息"
    sections.append(FormSection("applicant", title, tuple(make(c) for c in who)))
    placed.update(who)
    for s in offer.sections:
        fields = tuple(make(c) for c in s["fields"] if c in dictionary)
        placed.update(s["fields"])
        sections.append(FormSection(s["code"], s["title"], fields, s.get("show_if"), s.get("require_if")))
    for item in offer.items:
        rest = [f["dictionary"] for f in item.fields if f["dictionary"] not in placed]
        if rest:
            placed.update(rest)
            sections.append(
                FormSection(
                    "item_" + "".join(ch if ch.isalnum() else "_" for ch in item.code.lower()),
                    item.name,
                    tuple(make(c) for c in dict.fromkeys(rest)),
                    offer.item_rules.get(item.code),
                )
            )
    return sections


@dataclass
class FormResult:
    """A submitted form evaluated on the server: clean values, errors by field, visible sections.

    Each error is an ``InvalidError`` on ``form.<field>``, so that it can be raised as it is or shown in
    the reader's language (``messages``)."""

    values: dict[str, Any]
    errors: dict[str, InvalidError]
    visible: list[str]
    forced: list[str] = field(default_factory=list)  # sections whose require_if holds

    def messages(self, locale: str) -> dict[str, str]:
        """Field → what is wrong with it, in ``locale``."""
        return {name: error.text(locale) for name, error in self.errors.items()}


def _convert(f: FormField, raw: str) -> Any:
    value = raw.strip()
    where = f"form.{f.code}"
    if f.kind == "bool":
        return value.lower() in ("1", "true", "on", "yes", "是")
    if not value:
        return None
    if len(value) > f.max_length:
        raise InvalidError(
            N_("{label}: at most {max_length} characters"), field=where, label=f.label, max_length=f.max_length
        )
    if f.kind == "id_number":
        try:
            return validate_id_number(value)
        except IdentifierError as exc:
            raise InvalidError(N_("{label} is not valid: {reason}"), field=where, label=f.label, reason=exc) from exc
    if f.kind == "credit_code":
        try:
            return validate_uscc(value)
        except IdentifierError as exc:
            raise InvalidError(N_("{label} is not valid: {reason}"), field=where, label=f.label, reason=exc) from exc
    if f.kind == "phone":
        try:
            return validate_phone(value)
        except ValueError as exc:
            raise InvalidError(
                N_("{label} is not valid: enter an 11-digit mobile number"), field=where, label=f.label
            ) from exc
    if f.kind == "date":
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError as exc:
            raise InvalidError(N_("{label} must be a date (year-month-day)"), field=where, label=f.label) from exc
    if f.kind == "integer":
        if not value.lstrip("-").isdigit():
            raise InvalidError(N_("{label} must be a whole number"), field=where, label=f.label)
        return int(value)
    if f.kind == "select" and value not in f.options:
        raise InvalidError(
            N_("{label} must be one of: {options}"), field=where, label=f.label, options="、".join(f.options)
        )
    return value


def evaluate_form(sections: list[FormSection], raw: dict[str, str]) -> FormResult:
    """Validate a submitted form: rules decide which sections show and which are required."""
    values: dict[str, Any] = {}
    errors: dict[str, InvalidError] = {}
    for s in sections:
        for f in s.fields:
            try:
                values[f.code] = _convert(f, str(raw.get(f.code, "") or ""))
            except InvalidError as exc:
                errors[f.code] = exc
    facts = {f"form.{k}": v for k, v in values.items()}
    visible: list[str] = []
    forced_sections: list[str] = []
    for s in sections:
        if s.show_if is not None and not rules.holds(s.show_if, facts):
            for f in s.fields:  # a hidden section's values are not part of the application
                values.pop(f.code, None)
                errors.pop(f.code, None)
            continue
        visible.append(s.code)
        forced = s.require_if is not None and rules.holds(s.require_if, facts)
        if forced:
            forced_sections.append(s.code)
        for f in s.fields:
            if (
                (f.required or forced)
                and f.kind != "bool"
                and values.get(f.code) in (None, "")
                and f.code not in errors
            ):
                errors[f.code] = InvalidError(N_("Please fill in {label}"), field=f"form.{f.code}", label=f.label)
    return FormResult(values, errors, visible, forced_sections)


def controlling_fields(offer: Offering, sections: list[FormSection]) -> set[str]:
    """The form fields whose values change which sections show, which items apply, or the pre-check."""
    trees = [r for s in sections for r in (s.show_if, s.require_if) if r]
    trees += list(offer.item_rules.values())
    trees += [c["rule"] for c in offer.conditions] + [c["rule"] for i in offer.items for c in i.conditions]
    return {f.removeprefix("form.") for tree in trees for f in rules.facts_used(tree) if f.startswith("form.")}


def included_items(offer: Offering, values: dict[str, Any]) -> list[ServiceItem]:
    """The items this application takes part in (optional items by their rules over the form)."""
    facts = {f"form.{k}": v for k, v in values.items()}
    return [i for i in offer.items if i.code not in offer.item_rules or rules.holds(offer.item_rules[i.code], facts)]


# -- applicants, prefill (两个免于提交) --------------------------------------------------------------


@dataclass(frozen=True)
class Applicant:
    """Who applies: a person (ID number) or an enterprise (credit code), and their account if any."""

    kind: str
    key: str
    user_id: Any = None


@dataclass
class PrefillContext:
    """What prefill providers read from: the registers and the applicant's account."""

    session: Session
    settings: Settings
    reader: registers.RegisterReader
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)


class PrefillProvider(Protocol):
    """Reads what the government already knows about an applicant; ``name`` prefixes field prefills."""

    name: str

    def fetch(self, ctx: PrefillContext, applicant: Applicant) -> dict[str, Any]:
        """Element → value for this applicant (empty when the provider knows nothing)."""
        ...


class PersonRegisterProvider:
    """The natural-person register (自然人综合库)."""

    name = "person"

    def fetch(self, ctx: PrefillContext, applicant: Applicant) -> dict[str, Any]:
        """The applicant's register record."""
        if applicant.kind != "person":
            return {}
        record = registers.find_person(ctx.session, ctx.reader, applicant.key)
        return {**record, "id_number": applicant.key} if record else {}


class SpouseProvider:
    """The applicant's spouse, found through the marriage element of the person register."""

    name = "spouse"

    def fetch(self, ctx: PrefillContext, applicant: Applicant) -> dict[str, Any]:
        """The spouse's register record."""
        spouse = person_record(ctx, applicant).get("spouse_id_number")
        if not spouse:
            return {}
        return registers.find_person(ctx.session, ctx.reader, str(spouse)) or {}


class EnterpriseRegisterProvider:
    """The legal-person register (法人综合库)."""

    name = "enterprise"

    def fetch(self, ctx: PrefillContext, applicant: Applicant) -> dict[str, Any]:
        """The enterprise's register record."""
        if applicant.kind != "enterprise":
            return {}
        record = registers.find_enterprise(ctx.session, ctx.reader, applicant.key)
        return {**record, "credit_code": applicant.key} if record else {}


class AccountProvider:
    """What the applicant's own account holds (the phone number they verified)."""

    name = "account"

    def fetch(self, ctx: PrefillContext, applicant: Applicant) -> dict[str, Any]:
        """The account's phone."""
        user = find_user(ctx.session, applicant.user_id) if applicant.user_id else None
        return {"phone": user.phone} if user and user.phone else {}


PREFILL_PROVIDERS: dict[str, PrefillProvider] = {}


def register_prefill_provider(provider: PrefillProvider) -> None:
    """Add a provider; fields whose ``prefill`` starts with its name read from it."""
    PREFILL_PROVIDERS[provider.name] = provider


for _provider in (PersonRegisterProvider(), SpouseProvider(), EnterpriseRegisterProvider(), AccountProvider()):
    register_prefill_provider(_provider)


def _provided(ctx: PrefillContext, name: str, applicant: Applicant) -> dict[str, Any]:
    if name not in ctx.cache:
        provider = PREFILL_PROVIDERS.get(name)
        try:
            ctx.cache[name] = provider.fetch(ctx, applicant) if provider else {}
        except NotFoundError:  # a register not built yet: nothing to prefill from it
            ctx.cache[name] = {}
    return ctx.cache[name]


def person_record(ctx: PrefillContext, applicant: Applicant) -> dict[str, Any]:
    """The applicant's person record (empty for an enterprise or an unknown person)."""
    return _provided(ctx, "person", applicant)


def prefill(ctx: PrefillContext, applicant: Applicant, sections: list[FormSection]) -> dict[str, Any]:
    """Field → value for every field the government already knows (marked 已自动获取 on the form)."""
    found: dict[str, Any] = {}
    for s in sections:
        for f in s.fields:
            if not f.prefill:
                continue
            provider, element = f.prefill.split(".", 1)
            value = _provided(ctx, provider, applicant).get(element)
            if value not in (None, ""):
                found[f.code] = value.isoformat() if isinstance(value, date) else value
    return found


def holders(ctx: PrefillContext, applicant: Applicant) -> dict[str, str]:
    """Whose licences a material may be: the applicant's, the spouse's, the household's, the enterprise's."""
    if applicant.kind == "enterprise":
        return {"enterprise": applicant.key}
    record = person_record(ctx, applicant)
    found = {"applicant": applicant.key}
    if record.get("spouse_id_number"):
        found["spouse"] = str(record["spouse_id_number"])
    if record.get("household_no"):
        found["household"] = str(record["household_no"])
    return found


def licences_of(ctx: PrefillContext, applicant: Applicant) -> dict[str, list[dict[str, Any]]]:
    """Holder role → the licences that holder has (from the licence register)."""
    who = holders(ctx, applicant)
    if "licences" not in ctx.cache:
        try:
            rows = registers.licences_of_many(ctx.session, ctx.reader, list(who.values()))
        except NotFoundError:
            rows = []
        ctx.cache["licences"] = {"rows": rows}
    rows = ctx.cache["licences"]["rows"]
    return {role: [r for r in rows if str(r["holder_id"]).upper() == key.upper()] for role, key in who.items()}


def applicant_facts(ctx: PrefillContext, applicant: Applicant, values: dict[str, Any], today: date) -> dict[str, Any]:
    """The facts item conditions are evaluated over."""
    facts: dict[str, Any] = {f"form.{k}": v for k, v in values.items()}
    facts["applicant.kind"] = applicant.kind
    own = licences_of(ctx, applicant)
    if applicant.kind == "person":
        record = person_record(ctx, applicant)
        born = birth_date(applicant.key)
        facts["applicant.age"] = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        facts["applicant.in_register"] = bool(record)
        for element in ("district_code", "marital_status", "employment_status", "insurance_type", "education"):
            facts[f"applicant.{element}"] = record.get(element)
        facts["applicant.household_district"] = record.get("district_code")
        facts["applicant.licences"] = sorted({r["licence_type"] for r in own.get("applicant", [])})
    else:
        record = _provided(ctx, "enterprise", applicant)
        facts["enterprise.in_register"] = bool(record)
        for element in ("status", "district_code", "industry_section", "tax_status", "employees"):
            facts[f"enterprise.{element}"] = record.get(element)
        facts["enterprise.licences"] = sorted({r["licence_type"] for r in own.get("enterprise", [])})
    return facts


@dataclass(frozen=True)
class PrecheckResult:
    """申请条件预判: every condition of every included item, met or not, in plain Chinese."""

    findings: list[tuple[str, rules.Finding]]

    @property
    def passed(self) -> bool:
        """True when every condition is met."""
        return all(f.met for _, f in self.findings)

    @property
    def failures(self) -> list[str]:
        """The unmet conditions, as messages naming the item."""
        return [f"{name}：{f.message}" for name, f in self.findings if not f.met]


def precheck(offer: Offering, items: list[ServiceItem], facts: dict[str, Any]) -> PrecheckResult:
    """Evaluate the conditions (the bundle's own when it has them, else each included item's)."""
    if offer.conditions:
        return PrecheckResult([(offer.name, f) for f in rules.precheck(offer.conditions, facts)])
    findings: list[tuple[str, rules.Finding]] = []
    seen: set[str] = set()
    for item in items:
        for finding in rules.precheck(item.conditions, facts):
            if finding.message not in seen:  # the same condition of two items is told once (一次告知)
                seen.add(finding.message)
                findings.append((item.name, finding))
    return PrecheckResult(findings)


# -- materials (材料预审, licence reuse) -------------------------------------------------------------


@dataclass
class MaterialNeed:
    """A material the application needs, merged across items."""

    key: str
    name: str
    necessity: str
    source: str
    licence_type: str | None
    holder: str
    kinds: list[str]
    max_pages: int | None
    min_width: int | None
    min_height: int | None
    supply_within_days: int
    items: list[str]


def material_key(m: dict[str, Any]) -> str:
    """Two items asking for the same licence of the same holder, or the same named material, share a key."""
    if m.get("licence_type"):
        return f"licence:{m['licence_type']}:{m.get('holder', 'applicant')}"
    return f"name:{m['name']}"


def materials_for(items: list[ServiceItem]) -> list[MaterialNeed]:
    """The merged, de-duplicated materials of the items (the strictest necessity wins)."""
    merged: dict[str, MaterialNeed] = {}
    for item in items:
        for m in item.materials:
            key = material_key(m)
            need = merged.get(key)
            if need is None:
                merged[key] = MaterialNeed(
                    key,
                    m["name"],
                    m.get("necessity", "必须"),
                    m.get("source", "申请人自备"),
                    m.get("licence_type"),
                    m.get("holder", "applicant"),
                    list(m.get("kinds") or ["pdf", "jpg", "png"]),
                    m.get("max_pages"),
                    m.get("min_width"),
                    m.get("min_height"),
                    int(m.get("supply_within_days", 5)),
                    [item.name],
                )
                continue
            need.items.append(item.name)
            if NECESSITY_ORDER[m.get("necessity", "必须")] < NECESSITY_ORDER[need.necessity]:
                need.necessity = m.get("necessity", "必须")
    return list(merged.values())


def licence_for(need: MaterialNeed, held: dict[str, list[dict[str, Any]]], today: date) -> dict[str, Any] | None:
    """The A/B-level, unexpired licence that stands in for ``need``, if the holder has one."""
    if not need.licence_type:
        return None
    for row in held.get(need.holder, []):
        expires = row.get("expires_on")
        if (
            row["licence_type"] == need.licence_type
            and row.get("trust_level") in USABLE_LEVELS
            and (expires is None or expires >= today)
        ):
            return row
    return None


@dataclass(frozen=True)
class CheckedFile:
    """An upload that passed 材料预审."""

    media_type: str
    pages: int | None
    width: int | None
    height: int | None


MEDIA = {"pdf": "application/pdf", "jpg": "image/jpeg", "png": "image/png"}
KIND_NAMES = {"application/pdf": "PDF", "image/jpeg": "JPG", "image/png": "PNG"}


def check_material(need: MaterialNeed, data: bytes, filename: str, max_bytes: int) -> CheckedFile:
    """材料预审: type by content, size, page count and readability, with a precise message."""
    from shgov.core.files import sniff

    name, where = need.name, f"material:{need.key}"
    if not data:
        raise InvalidError(N_("“{name}”: the file is empty"), field=where, name=name)
    if len(data) > max_bytes:
        raise InvalidError(
            N_("“{name}”: the file is {size:.1f} MB, more than the {limit:.1f} MB limit"),
            field=where,
            name=name,
            size=len(data) / 1024 / 1024,
            limit=max_bytes / 1024 / 1024,
        )
    allowed = tuple(MEDIA[k] for k in need.kinds)
    media_type = sniff(data, allowed)
    if media_type is None:
        raise InvalidError(
            N_("“{name}” must be a {wanted} file; “{filename}” is not"),
            field=where,
            name=name,
            wanted="、".join(k.upper() for k in need.kinds),
            filename=filename,
        )
    if media_type == "application/pdf":
        pages = _pdf_pages(data, name, where)
        if need.max_pages is not None and pages > need.max_pages:
            raise InvalidError(
                N_("“{name}” has {pages} pages; at most {max_pages} are allowed"),
                field=where,
                name=name,
                pages=pages,
                max_pages=need.max_pages,
            )
        return CheckedFile(media_type, pages, None, None)
    width, height = _image_size(data, name, where)
    if (need.min_width and width < need.min_width) or (need.min_height and height < need.min_height):
        raise InvalidError(
            N_(
                "“{name}”: the image is {width}×{height} pixels; at least {min_width}×{min_height} are needed "
                "to read it"
            ),
            field=where,
            name=name,
            width=width,
            height=height,
            min_width=need.min_width or 0,
            min_height=need.min_height or 0,
        )
    if width < 200 or height < 200:
        raise InvalidError(
            N_("“{name}”: the image is only {width}×{height} pixels and cannot be read; please take it again"),
            field=where,
            name=name,
            width=width,
            height=height,
        )
    return CheckedFile(media_type, None, width, height)


def _pdf_pages(data: bytes, name: str, where: str) -> int:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise InvalidError(
                N_("“{name}”: the PDF is password-protected and cannot be reviewed; please upload it unencrypted"),
                field=where,
                name=name,
            )
        pages = len(reader.pages)
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise InvalidError(N_("“{name}”: the PDF is damaged and cannot be opened"), field=where, name=name) from exc
    if pages == 0:
        raise InvalidError(N_("“{name}”: the PDF has no pages"), field=where, name=name)
    return pages


def _image_size(data: bytes, name: str, where: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidError(N_("“{name}”: the image is damaged and cannot be opened"), field=where, name=name) from exc


# -- guides, search, consistency --------------------------------------------------------------------


def department_name(key: str) -> str:
    """The short name of a department key (市卫健委 …)."""
    return DEPARTMENT_NAMES.get(key, key)


def merged_conditions(offer: Offering) -> list[str]:
    """一次告知: every condition once."""
    if offer.conditions:
        return [c["message"] for c in offer.conditions]
    return list(dict.fromkeys(c["message"] for i in offer.items for c in i.conditions))


CHANNEL_LABELS = {
    "online": N_("online"),
    "window": N_("service hall window"),
    "kiosk": N_("self-service kiosk"),
    "express": N_("results by post"),
    "appointment": N_("by appointment"),
}


@dataclass
class Guide:
    """办事指南 / 一次告知: what an applicant must know before applying, merged across the offering's items."""

    offer: Offering
    conditions: list[str]
    materials: list[MaterialNeed]
    items: list[ServiceItem]
    channels: list[str]  # offered by every item
    fees: list[str]
    visits: int  # the most visits any item needs
    locations: list[str]
    hours: list[str]


def guide(offer: Offering) -> Guide:
    """The guide of a bundle or item, generated from its data."""
    items = offer.items
    return Guide(
        offer,
        merged_conditions(offer),
        materials_for(items),
        items,
        [c for c in CHANNEL_LABELS if all(i.channels.get(c) for i in items)],
        list(dict.fromkeys(str(i.fee.get("standard") or "不收费") for i in items)),
        max((i.visits for i in items), default=0),
        list(dict.fromkeys(i.location for i in items if i.location)),
        list(dict.fromkeys(i.hours for i in items if i.hours)),
    )


def search(session: Session, q: str = "", life_event: str = "", target: str = "") -> list[dict[str, Any]]:
    """Items and bundles matching a keyword (jieba tokens over name, department, life events) and/or a
    life situation; bundles first, then by relevance."""
    tokens = text.query_tokens(q) if q.strip() else []
    hits: list[dict[str, Any]] = []
    candidates: list[tuple[str, Any, str]] = [
        ("bundle", b, department_name(b.accepting_department_key))
        for b in list_bundles(session)
        if b.status == "active"
    ]
    candidates += [("item", i, department_name(i.department_key)) for i in list_items(session) if i.status == "active"]
    for kind, row, dept in candidates:
        if life_event and life_event not in row.life_events:
            continue
        if target and row.target != target:
            continue
        score = 1.0
        if tokens:
            haystack = f"{row.name} {dept} {' '.join(row.life_events)} {getattr(row, 'description', '')}"
            matched = sum(1 for t in tokens if t in haystack)
            if matched == 0:
                continue
            score = matched / len(tokens) + (0.5 if q.strip() in row.name else 0.0)
        score += 0.25 if kind == "bundle" else 0.0
        hits.append(
            {
                "kind": kind,
                "code": row.code,
                "name": row.name,
                "department": dept,
                "life_events": row.life_events,
                "promised_days": row.promised_days,
                "score": round(score, 3),
            }
        )
    hits.sort(key=lambda h: (-h["score"], h["kind"] != "bundle", h["code"]))
    return hits


COMPARED = ("promised_days", "statutory_days", "materials", "conditions", "fee", "visits", "case_kind")


def _comparable(name: str, value: Any) -> Any:
    if name == "materials":
        return sorted(m["name"] if isinstance(m, dict) else str(m) for m in value)
    if name == "conditions":
        return sorted(c["message"] if isinstance(c, dict) else str(c) for c in value)
    return value


def inconsistencies(session: Session) -> list[dict[str, Any]]:
    """线上线下一致 check: every item whose service-hall definition differs from the online one."""
    found = []
    for item in list_items(session):
        for name, offline_value in sorted(item.offline.items()):
            if name not in COMPARED:
                continue
            online = _comparable(name, getattr(item, name))
            offline = _comparable(name, offline_value)
            if online != offline:
                found.append(
                    {
                        "code": item.code,
                        "name": item.name,
                        "department": department_name(item.department_key),
                        "field": name,
                        "online": online,
                        "offline": offline,
                    }
                )
    return found


# -- the demo ---------------------------------------------------------------------------------------


def seed_demo(session: Session, settings: Settings) -> dict[str, int]:
    """The field dictionary, 69 items of 21 departments and four bundles (from ``data/``)."""
    fields = json.loads((DATA / "fields.json").read_text())
    for f in fields:
        save_field(session, f)
    counts = import_items(session, json.loads((DATA / "items.json").read_text()))
    bundles = load_bundle_file(DATA / "bundles" / "bundles.json")
    for b in bundles:
        save_bundle(session, b)
    return {"fields": len(fields), "items": counts["created"] + counts["updated"], "bundles": len(bundles)}
