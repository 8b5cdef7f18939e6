"""Framework-free workflow core: vetted BPMN models, a sandboxed expression language and a
runtime around SpiffWorkflow 3.2 that stores each instance without its process definition."""

from engine.workflow.deadlines import compute_due_at
from engine.workflow.expressions import SandboxScriptEngine, check_expression, evaluate
from engine.workflow.problems import (
    InvalidTaskData,
    ModelError,
    Problem,
    TaskNotReady,
    UnsafeExpression,
)
from engine.workflow.runtime import ReadyTask, WorkflowRuntime
from engine.workflow.specs import (
    ProcessModel,
    TaskMeta,
    lane_roles,
    load_process_model,
    load_roles,
)
from engine.workflow.xmlsafe import MAX_BPMN_BYTES, parse_xml

__all__ = [
    "MAX_BPMN_BYTES",
    "InvalidTaskData",
    "ModelError",
    "Problem",
    "ProcessModel",
    "ReadyTask",
    "SandboxScriptEngine",
    "TaskMeta",
    "TaskNotReady",
    "UnsafeExpression",
    "WorkflowRuntime",
    "check_expression",
    "compute_due_at",
    "evaluate",
    "lane_roles",
    "load_process_model",
    "load_roles",
    "parse_xml",
]
