"""BPMN 2.0 processes of bundles, run by SpiffWorkflow with no way to run code.

Bundles are data an administrator uploads, so a process may hold nothing that executes: script,
service, business-rule and send tasks, call activities and sub-processes are refused at save time,
and the script engine given to SpiffWorkflow raises on any script and evaluates gateway conditions
with ``rules.evaluate_expression`` (names, constants, comparisons, boolean logic — no ``eval``).

Conventions: the user task ``accept`` is the one acceptance (一口受理); every other user task is a
department's task, mapped to an item by the bundle's ``tasks``; the task ``issue`` is the unified
issuance, which the system runs. A process's state is stored without its spec (the spec is cached
by the SM3 digest of the BPMN text), so a case's stored state grows with its steps only.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn import BpmnWorkflow  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.parser import BpmnParser  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.script_engine.python_environment import (  # type: ignore[import-untyped]
    BasePythonScriptEngineEnvironment,
)
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec  # type: ignore[import-untyped]
from SpiffWorkflow.exceptions import SpiffWorkflowException  # type: ignore[import-untyped]

from shgov.core.errors import InvalidError
from shgov.core.i18n import N_
from shgov.services.rules import evaluate_expression, parse_expression

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ACCEPT = "accept"
ISSUE = "issue"
FORBIDDEN = (
    "scriptTask",
    "serviceTask",
    "businessRuleTask",
    "sendTask",
    "receiveTask",
    "callActivity",
    "subProcess",
    "transaction",
    "adHocSubProcess",
)


class ScriptsForbidden(Exception):  # noqa: N818 - reads as the rule it enforces
    """Raised when a process tries to run a script."""


class _SafeEnvironment(BasePythonScriptEngineEnvironment):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__({})

    def evaluate(self, expression: str, context: dict[str, Any], external_context: Any = None) -> Any:
        return evaluate_expression(expression, context)

    def execute(self, script: str, context: dict[str, Any], external_context: Any = None) -> bool:
        raise ScriptsForbidden("scripts are not allowed in SH-GOV processes")

    def call_service(self, context: dict[str, Any], **kwargs: Any) -> Any:
        raise ScriptsForbidden("service calls are not allowed in SH-GOV processes")


class SafeScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """A script engine that evaluates gateway conditions safely and refuses every script."""

    def __init__(self) -> None:
        super().__init__(environment=_SafeEnvironment())

    def validate(self, expression: str) -> None:
        """Check a condition when the process is parsed."""
        parse_expression(expression)


ENGINE = SafeScriptEngine()
_serializer = BpmnWorkflowSerializer()


def digest(bpmn: str) -> str:
    """The SM3 digest of a BPMN text: the key of its parsed spec."""
    return hashlib.new("sm3", bpmn.encode()).hexdigest()


def _xml(bpmn: str) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(bpmn.encode(), parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidError(N_("the BPMN file is not well-formed XML: {reason}"), field="bpmn", reason=str(exc)) from exc
    # A process needs no DTD; one can only be there to smuggle in entities (XXE, billion laughs).
    if root.getroottree().docinfo.doctype:
        raise InvalidError(N_("the BPMN file must not declare a DOCTYPE or entities"), field="bpmn")
    return root


def validate(bpmn: str, process_id: str, task_items: dict[str, str]) -> list[str]:
    """Refuse a process that could run code, lacks acceptance or issuance, or whose department tasks
    are not mapped to items; returns the ids of its user tasks."""
    root = _xml(bpmn)
    ns = {"b": BPMN_NS}
    for tag in FORBIDDEN:
        found = root.find(f".//b:{tag}", ns)
        if found is not None:
            raise InvalidError(
                N_("the process contains a {tag} ({id}); SH-GOV processes may not run code or nest processes"),
                field="bpmn",
                tag=tag,
                id=found.get("id"),
            )
    process = root.find(f"b:process[@id='{process_id}']", ns)
    if process is None:
        raise InvalidError(
            N_("the BPMN file has no process with id {process_id!r}"), field="process_id", process_id=process_id
        )
    for condition in process.iter(f"{{{BPMN_NS}}}conditionExpression"):
        parse_expression(condition.text or "")
    user_tasks = [t.get("id") for t in process.iter(f"{{{BPMN_NS}}}userTask")]
    if ACCEPT not in user_tasks:
        raise InvalidError(N_("the process needs a user task with id 'accept' (一口受理)"), field="bpmn")
    if process.find(f".//b:*[@id='{ISSUE}']", ns) is None:
        raise InvalidError(N_("the process needs a task with id 'issue' (统一发证)"), field="bpmn")
    unmapped = [t for t in user_tasks if t != ACCEPT and t not in task_items]
    if unmapped:
        raise InvalidError(
            N_("user tasks {tasks} are not mapped to items in 'tasks'"), field="tasks", tasks=", ".join(unmapped)
        )
    missing = [t for t in task_items if t not in user_tasks]
    if missing:
        raise InvalidError(
            N_("'tasks' names {tasks}, which the process does not have"), field="tasks", tasks=", ".join(missing)
        )
    spec(bpmn, process_id)  # SpiffWorkflow must parse it too
    return [t for t in user_tasks if t is not None]


_specs: dict[str, BpmnProcessSpec] = {}
_spec_dicts: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def spec(bpmn: str, process_id: str) -> BpmnProcessSpec:
    """The parsed process (cached by digest)."""
    key = f"{digest(bpmn)}:{process_id}"
    with _lock:
        found = _specs.get(key)
    if found is not None:
        return found
    parser = BpmnParser()
    try:
        parser.add_bpmn_xml(_xml(bpmn), filename=f"{process_id}.bpmn")
        parsed = parser.get_spec(process_id)
    except (SpiffWorkflowException, ValueError, KeyError) as exc:
        raise InvalidError(N_("SpiffWorkflow cannot use the process: {reason}"), field="bpmn", reason=str(exc)) from exc
    with _lock:
        _specs[key] = parsed
        _spec_dicts[key] = _serializer.to_dict(parsed)
    return parsed


def start(bpmn: str, process_id: str, data: dict[str, Any]) -> BpmnWorkflow:
    """A new running process with ``data`` (the form's values) as its data."""
    workflow = BpmnWorkflow(spec(bpmn, process_id), script_engine=ENGINE)
    workflow.data.update(data)
    for task in workflow.get_tasks():
        task.data.update(data)
    workflow.do_engine_steps()
    return workflow


def dump(workflow: BpmnWorkflow) -> str:
    """The process state as JSON, without the spec."""
    state = _serializer.to_dict(workflow)
    state.pop("spec", None)
    state.pop("subprocess_specs", None)
    return json.dumps(state, separators=(",", ":"), ensure_ascii=False)


def load(bpmn: str, process_id: str, state: str) -> BpmnWorkflow:
    """A stored process state, brought back with its (cached) spec."""
    spec(bpmn, process_id)
    key = f"{digest(bpmn)}:{process_id}"
    full = json.loads(state)
    full["spec"] = _spec_dicts[key]
    full["subprocess_specs"] = {}
    workflow = _serializer.from_dict(full)
    workflow.script_engine = ENGINE
    return workflow


def single_item(item_code: str, item_name: str) -> tuple[str, str, dict[str, str]]:
    """The process of an item applied for alone: acceptance, the department's task, issuance."""
    process_id = "item_" + "".join(c if c.isalnum() else "_" for c in item_code)
    bpmn = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="{BPMN_NS}" id="defs_{process_id}" targetNamespace="https://shgov.example/bpmn">
  <bpmn:process id="{process_id}" name="{escape(item_name)}" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="accept" name="受理"/>
    <bpmn:userTask id="handle" name="{escape(item_name)}"/>
    <bpmn:task id="issue" name="发证"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="accept"/>
    <bpmn:sequenceFlow id="f2" sourceRef="accept" targetRef="handle"/>
    <bpmn:sequenceFlow id="f3" sourceRef="handle" targetRef="issue"/>
    <bpmn:sequenceFlow id="f4" sourceRef="issue" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""
    return bpmn, process_id, {"handle": item_code}
