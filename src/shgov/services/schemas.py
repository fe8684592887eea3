"""Input and output shapes of the services context (items, the field dictionary, bundles)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shgov.core.errors import InvalidValueError
from shgov.core.i18n import N_
from shgov.services.rules import check_rule

ITEM_TYPES = ("行政许可", "行政给付", "行政确认", "行政征收", "行政奖励", "行政裁决", "公共服务", "其他行政权力")
FIELD_KINDS = ("text", "id_number", "credit_code", "phone", "date", "integer", "select", "bool")


def _all_kinds() -> list[Literal["pdf", "jpg", "png"]]:
    return ["pdf", "jpg", "png"]


class ConditionIn(BaseModel):
    """An item condition: a rule and what to tell an applicant who does not meet it."""

    model_config = ConfigDict(extra="forbid")

    rule: dict[str, Any]
    message: str = Field(min_length=2, max_length=200)

    @field_validator("rule")
    @classmethod
    def _rule(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_rule(value)
        return value


class MaterialIn(BaseModel):
    """A material (申请材料) an item needs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    necessity: Literal["必须", "容缺", "非必须"] = "必须"
    form: Literal["电子", "原件", "复印件"] = "电子"
    copies: int = Field(default=1, ge=1, le=20)
    source: Literal["申请人自备", "政府部门核发", "其他"] = "申请人自备"
    # For 政府部门核发: the e-licence type that stands in for the material, and whose licence it is.
    licence_type: str | None = Field(default=None, max_length=60)
    holder: Literal["applicant", "spouse", "household", "enterprise"] = "applicant"
    kinds: list[Literal["pdf", "jpg", "png"]] = Field(default_factory=_all_kinds, min_length=1)
    max_pages: int | None = Field(default=None, ge=1, le=1000)
    min_width: int | None = Field(default=None, ge=1, le=20000)
    min_height: int | None = Field(default=None, ge=1, le=20000)
    supply_within_days: int = Field(default=5, ge=1, le=60)  # 容缺: working days to supply it


class ItemFieldIn(BaseModel):
    """A field of an item's own form, mapped to a shared field of the dictionary."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40)
    dictionary: str = Field(min_length=1, max_length=40)
    required: bool = True


class ItemIn(BaseModel):
    """A service item with the fields of the national implementation list."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=3, max_length=36, pattern=r"^[0-9A-Za-z][0-9A-Za-z\-]*$")
    basic_code: str = Field(min_length=1, max_length=12)
    name: str = Field(min_length=2, max_length=200)
    item_type: Literal[ITEM_TYPES]  # type: ignore[valid-type]
    department_key: str = Field(min_length=1, max_length=12)
    level: Literal["city", "district", "township"] = "district"
    target: Literal["person", "enterprise"]
    case_kind: Literal["即办件", "承诺件"] = "承诺件"
    basis: str = Field(default="", max_length=2000)
    conditions: list[ConditionIn] = Field(default_factory=list, max_length=30)
    materials: list[MaterialIn] = Field(default_factory=list, max_length=40)
    fields: list[ItemFieldIn] = Field(default_factory=list, max_length=80)
    statutory_days: int = Field(ge=0, le=365)
    promised_days: int = Field(ge=0, le=365)
    fee: dict[str, Any] = Field(default_factory=lambda: {"charged": False, "standard": "不收费", "basis": ""})
    channels: dict[str, Any] = Field(default_factory=dict)
    visits: int = Field(default=0, ge=0, le=10)
    result_licence_type: str | None = Field(default=None, max_length=60)
    result_validity_years: int | None = Field(default=None, ge=1, le=100)
    life_events: list[str] = Field(default_factory=list, max_length=20)
    scope: str = Field(default="全市通办", max_length=20)
    procedure: str = Field(default="", max_length=2000)
    location: str = Field(default="", max_length=2000)
    hours: str = Field(default="", max_length=200)
    offline: dict[str, Any] = Field(default_factory=dict)
    status: Literal["active", "suspended"] = "active"

    @field_validator("promised_days")
    @classmethod
    def _promise(cls, value: int, info: Any) -> int:
        statutory = info.data.get("statutory_days")
        if statutory is not None and value > statutory:
            raise InvalidValueError(N_("the promised time limit cannot exceed the statutory one"))
        return value


class FieldDefIn(BaseModel):
    """A shared field of the dictionary."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1, max_length=60)
    label_en: str = Field(default="", max_length=80)
    kind: Literal[FIELD_KINDS]  # type: ignore[valid-type]
    options: list[str] = Field(default_factory=list, max_length=100)
    max_length: int = Field(default=200, ge=1, le=5000)
    prefill: str | None = Field(default=None, max_length=60, pattern=r"^[a-z_]+\.[a-z_]+$")
    personal: bool = False
    hint: str = Field(default="", max_length=200)


class SectionIn(BaseModel):
    """A section of a bundle's form, shown and required by rules evaluated on the server."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1, max_length=60)
    fields: list[str] = Field(min_length=1, max_length=60)
    show_if: dict[str, Any] | None = None
    require_if: dict[str, Any] | None = None

    @field_validator("show_if", "require_if")
    @classmethod
    def _rules(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_rule(value)
        return value


class BundleIn(BaseModel):
    """An 一件事: its items, form sections, process (BPMN 2.0 XML) and which task is which item."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_\-]*$")
    name: str = Field(min_length=2, max_length=100)
    description: str = Field(default="", max_length=2000)
    target: Literal["person", "enterprise"] = "person"
    life_events: list[str] = Field(default_factory=list, max_length=20)
    item_codes: list[str] = Field(min_length=1, max_length=30)
    item_rules: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tasks: dict[str, str] = Field(min_length=1)
    sections: list[SectionIn] = Field(default_factory=list, max_length=30)
    conditions: list[ConditionIn] = Field(default_factory=list, max_length=30)
    accepting_department_key: str = Field(min_length=1, max_length=12)
    promised_days: int = Field(ge=0, le=365)
    bpmn: str = Field(min_length=50, max_length=500_000)
    process_id: str = Field(min_length=1, max_length=60)
    status: Literal["active", "suspended"] = "active"

    @field_validator("item_rules")
    @classmethod
    def _item_rules(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for code, rule in value.items():
            check_rule(rule, f"item_rules.{code}")
        return value


class SearchHit(BaseModel):
    """A search result: an item or a bundle."""

    kind: Literal["item", "bundle"]
    code: str
    name: str
    department: str
    life_events: list[str]
    promised_days: int
    score: float
