"""Tables of the services context: service items, the shared field dictionary and bundles (一件事)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, TimestampMixin, UUIDKeyMixin


class ServiceItem(UUIDKeyMixin, TimestampMixin, Base):
    """A 政务服务事项 with the fields of the national implementation list (实施清单)."""

    __tablename__ = "service_items"

    code: Mapped[str] = mapped_column(String(36), unique=True)  # 实施编码
    basic_code: Mapped[str] = mapped_column(String(12), index=True)  # 基本编码
    name: Mapped[str] = mapped_column(String(200), index=True)
    item_type: Mapped[str] = mapped_column(String(20))  # 行政许可, 行政给付, 行政确认, 公共服务 …
    department_key: Mapped[str] = mapped_column(String(12), index=True)  # e.g. wj → 310000.wj / 310115.wj
    level: Mapped[str] = mapped_column(String(10))  # city | district | township
    target: Mapped[str] = mapped_column(String(10))  # person | enterprise
    case_kind: Mapped[str] = mapped_column(String(10))  # 即办件 | 承诺件
    basis: Mapped[str] = mapped_column(Text, default="")  # 设定依据
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    materials: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    statutory_days: Mapped[int]
    promised_days: Mapped[int]
    fee: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    channels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    visits: Mapped[int] = mapped_column(default=0)
    result_licence_type: Mapped[str | None] = mapped_column(String(60))
    result_validity_years: Mapped[int | None]
    life_events: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(String(20), default="全市通办")
    procedure: Mapped[str] = mapped_column(Text, default="")  # 办理流程
    location: Mapped[str] = mapped_column(Text, default="")
    hours: Mapped[str] = mapped_column(String(200), default="")
    # The definition published at the service hall, where it differs from the online one (线上线下一致).
    offline: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default="active")
    version: Mapped[int] = mapped_column(default=1)


class FieldDef(Base):
    """A shared field of the field dictionary: every item's field that means the same is asked once."""

    __tablename__ = "service_fields"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    label: Mapped[str] = mapped_column(String(60))
    label_en: Mapped[str] = mapped_column(String(80), default="")
    kind: Mapped[str] = mapped_column(String(12))  # text, id_number, credit_code, phone, date, integer, select, bool
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_length: Mapped[int] = mapped_column(default=200)
    prefill: Mapped[str | None] = mapped_column(String(60))  # provider.element, e.g. person.name
    personal: Mapped[bool] = mapped_column(default=False)  # masked in responses to others
    hint: Mapped[str] = mapped_column(String(200), default="")


class Bundle(UUIDKeyMixin, TimestampMixin, Base):
    """An 一件事: several items, one guide, one form, one acceptance, one process, one issuance."""

    __tablename__ = "service_bundles"

    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    target: Mapped[str] = mapped_column(String(10))
    life_events: Mapped[list[str]] = mapped_column(JSON, default=list)
    item_codes: Mapped[list[str]] = mapped_column(JSON)
    # item code → rule: the item is part of this application only when the rule holds (e.g. a chosen option).
    item_rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # BPMN user-task id → item code: which department's task each step of the process is.
    tasks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # When set, these conditions replace the items' own (e.g. 企业开办: the enterprise does not exist yet).
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Form sections beyond the applicant's: {code, title, fields, show_if, require_if} (rules, see rules.py).
    sections: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    accepting_department_key: Mapped[str] = mapped_column(String(12))
    promised_days: Mapped[int]
    bpmn: Mapped[str] = mapped_column(Text)
    process_id: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(10), default="active")
    version: Mapped[int] = mapped_column(default=1)
