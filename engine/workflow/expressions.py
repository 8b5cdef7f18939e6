"""Lotsen's sandboxed expression language (a tiny subset of Python).

SpiffWorkflow's default script engine hands model text to `eval`/`exec` with real builtins,
which lets an uploaded diagram run shell commands. Here every expression is parsed, checked
against an allow-list of AST nodes, and then interpreted by walking that tree ourselves:
no `eval`, no `exec`, no attribute access, no calls except a few pure functions, and size
guards so `*`/`+` cannot be used to exhaust memory.
"""

from __future__ import annotations

import ast
import datetime as _dt
import functools
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import (
    BasePythonScriptEngineEnvironment,
)
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine.workflow.problems import ExpressionNameError, ScriptsDisabled, UnsafeExpression

__all__ = [
    "ALLOWED_FUNCTIONS",
    "MAX_EXPRESSION_LENGTH",
    "SandboxEnvironment",
    "SandboxScriptEngine",
    "check_expression",
    "evaluate",
]

MAX_EXPRESSION_LENGTH = 2000
MAX_STRING_LITERAL = 1000
MAX_INT_MAGNITUDE = 10**18
MAX_SEQUENCE_LENGTH = 10_000
"""Longest str/list/tuple that `*` may build (and that `+` may build from two operands)."""
MAX_CONCAT_LENGTH = 200_000
"""Longest result of `+` on sequences: data may hold long free text, but not unbounded."""
MAX_NESTING = 60
MAX_ROUND_DIGITS = 20

ALLOWED_FUNCTIONS: frozenset[str] = frozenset(
    {"len", "min", "max", "abs", "any", "all", "sum", "int", "str", "float", "bool", "round"}
)

_SCALAR_TYPES: tuple[type, ...] = (
    type(None),
    bool,
    int,
    float,
    str,
    _dt.datetime,
    _dt.date,
    _dt.timedelta,
)
_CONTAINER_TYPES: tuple[type, ...] = (list, tuple, dict, set, frozenset)
_VALUE_TYPES = _SCALAR_TYPES + _CONTAINER_TYPES

_COMPARE_OPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_BIN_OPS: tuple[type[ast.operator], ...] = (
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
)
_UNARY_OPS: tuple[type[ast.unaryop], ...] = (ast.Not, ast.USub, ast.UAdd)

# Nodes that are pure structure (operators, contexts) and carry no behaviour of their own.
_STRUCTURAL: tuple[type[ast.AST], ...] = (
    ast.Load,
    ast.And,
    ast.Or,
    *_COMPARE_OPS.keys(),
    *_BIN_OPS,
    *_UNARY_OPS,
)


# --------------------------------------------------------------------------- checking


def _describe(node: ast.AST) -> str:
    names = {
        ast.Attribute: "attribute access",
        ast.Lambda: "lambda",
        ast.ListComp: "list comprehension",
        ast.SetComp: "set comprehension",
        ast.DictComp: "dict comprehension",
        ast.GeneratorExp: "generator expression",
        ast.Starred: "star unpacking",
        ast.JoinedStr: "f-string",
        ast.FormattedValue: "f-string",
        ast.NamedExpr: "assignment expression (:=)",
        ast.Await: "await",
        ast.Yield: "yield",
        ast.YieldFrom: "yield",
        ast.Pow: "power operator (**)",
        ast.BitAnd: "bitwise operator",
        ast.BitOr: "bitwise operator",
        ast.BitXor: "bitwise operator",
        ast.LShift: "shift operator",
        ast.RShift: "shift operator",
        ast.MatMult: "matrix multiplication (@)",
        ast.Invert: "bitwise inversion (~)",
    }
    return names.get(type(node), type(node).__name__)


def _check_constant(value: object) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_INT_MAGNITUDE:
            raise UnsafeExpression("integer literal too large")
        return
    if isinstance(value, float):
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING_LITERAL:
            raise UnsafeExpression(f"string literal longer than {MAX_STRING_LITERAL} characters")
        return
    raise UnsafeExpression(f"literal of type {type(value).__name__} is not allowed")


def _check_node(node: ast.AST, depth: int) -> None:
    if depth > MAX_NESTING:
        raise UnsafeExpression("expression is nested too deeply")
    if isinstance(node, _STRUCTURAL):
        return
    if isinstance(node, ast.Expression):
        _check_node(node.body, depth + 1)
        return
    if isinstance(node, ast.Name):
        if not isinstance(node.ctx, ast.Load):
            raise UnsafeExpression("assignment is not allowed")
        if node.id.startswith("_"):
            raise UnsafeExpression(f"names starting with '_' are not allowed: {node.id!r}")
        return
    if isinstance(node, ast.Constant):
        _check_constant(node.value)
        return
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute):
            raise UnsafeExpression("attribute access is not allowed (method calls included)")
        if not isinstance(node.func, ast.Name):
            raise UnsafeExpression("only the allowed functions may be called, by name")
        if node.func.id not in ALLOWED_FUNCTIONS:
            names = ", ".join(sorted(ALLOWED_FUNCTIONS))
            raise UnsafeExpression(
                f"call of {node.func.id!r} is not allowed (allowed functions: {names})"
            )
        if node.keywords:
            raise UnsafeExpression("keyword arguments are not allowed")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise UnsafeExpression("star unpacking is not allowed")
            _check_node(arg, depth + 1)
        return
    if isinstance(node, ast.BinOp) and not isinstance(node.op, _BIN_OPS):
        raise UnsafeExpression(f"{_describe(node.op)} is not allowed")
    if isinstance(node, ast.UnaryOp) and not isinstance(node.op, _UNARY_OPS):
        raise UnsafeExpression(f"{_describe(node.op)} is not allowed")
    if isinstance(node, ast.Dict) and any(k is None for k in node.keys):
        raise UnsafeExpression("dict unpacking (**) is not allowed")
    if isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load):
        raise UnsafeExpression("assignment is not allowed")
    if isinstance(node, ast.List | ast.Tuple) and not isinstance(node.ctx, ast.Load):
        raise UnsafeExpression("assignment is not allowed")
    allowed = (
        ast.Compare,
        ast.BoolOp,
        ast.UnaryOp,
        ast.BinOp,
        ast.Subscript,
        ast.Slice,
        ast.List,
        ast.Tuple,
        ast.Dict,
        ast.Set,
        ast.IfExp,
    )
    if not isinstance(node, allowed):
        raise UnsafeExpression(f"{_describe(node)} is not allowed")
    for child in ast.iter_child_nodes(node):
        _check_node(child, depth + 1)


@functools.lru_cache(maxsize=2048)
def _compile(expr: str) -> ast.Expression:
    """Parse and check once per distinct expression text (the checked tree is never mutated)."""
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise UnsafeExpression(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise UnsafeExpression(f"not a valid expression: {type(exc).__name__}") from None
    _check_node(tree, 0)
    return tree


def check_expression(expr: str) -> None:
    """Raise UnsafeExpression unless `expr` is inside Lotsen's expression subset."""
    if not isinstance(expr, str):
        raise UnsafeExpression("expression must be a string")
    _compile(expr)


# --------------------------------------------------------------------------- evaluation


def _require_value(value: Any, what: str) -> Any:
    if not isinstance(value, _VALUE_TYPES):
        raise UnsafeExpression(f"{what} has unsupported type {type(value).__name__}")
    return value


def _seq_len(value: Any) -> int | None:
    if isinstance(value, str | list | tuple):
        return len(value)
    return None


def _guarded_mul(left: Any, right: Any) -> Any:
    if isinstance(left, bool | int) and isinstance(right, bool | int):
        if abs(left).bit_length() + abs(right).bit_length() > 128:
            raise UnsafeExpression("multiplication result too large")
        result = left * right
        if abs(result) > MAX_INT_MAGNITUDE:
            raise UnsafeExpression("multiplication result too large")
        return result
    for seq, count in ((left, right), (right, left)):
        n = _seq_len(seq)
        if n is not None and isinstance(count, int):
            if n * max(count, 0) > MAX_SEQUENCE_LENGTH:
                raise UnsafeExpression(
                    f"multiplication would build more than {MAX_SEQUENCE_LENGTH} elements"
                )
            return seq * count
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left * right
    raise TypeError(f"cannot multiply {type(left).__name__} and {type(right).__name__}")


def _guarded_add(left: Any, right: Any) -> Any:
    a, b = _seq_len(left), _seq_len(right)
    if a is not None and b is not None and a + b > MAX_CONCAT_LENGTH:
        raise UnsafeExpression("concatenation result too large")
    result = left + right
    if isinstance(result, int) and not isinstance(result, bool) and abs(result) > MAX_INT_MAGNITUDE:
        raise UnsafeExpression("addition result too large")
    return result


def _guarded_mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        # '%999999999s' % x would build a huge string; formatting is not in the subset.
        raise UnsafeExpression("string formatting with % is not allowed")
    return left % right


_BIN_IMPL: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _guarded_add,
    ast.Sub: operator.sub,
    ast.Mult: _guarded_mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: _guarded_mod,
}


def _fn_str(value: Any = "") -> str:
    if not isinstance(value, _SCALAR_TYPES):
        raise UnsafeExpression("str() accepts only scalar values")
    return str(value)


def _fn_round(value: Any, ndigits: Any = None) -> Any:
    if ndigits is None:
        return round(value)
    if not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS:
        raise UnsafeExpression(f"round() digits must be an integer within ±{MAX_ROUND_DIGITS}")
    return round(value, ndigits)


def _fn_sum(values: Iterable[Any], start: Any = 0) -> Any:
    total = start
    for item in values:
        if not isinstance(item, int | float) or not isinstance(total, int | float):
            raise TypeError("sum() accepts only numbers")
        total = total + item
    return total


def _fn_int(value: Any, *base: Any) -> int:
    if isinstance(value, str) and len(value) > 100:
        raise UnsafeExpression("int() argument too long")
    result = int(value, *base)
    if abs(result) > MAX_INT_MAGNITUDE:
        raise UnsafeExpression("int() result too large")
    return result


def _fn_float(value: Any = 0.0) -> float:
    if isinstance(value, str) and len(value) > 100:
        raise UnsafeExpression("float() argument too long")
    return float(value)


_FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    # name: (implementation, min args, max args)
    "len": (len, 1, 1),
    "min": (min, 1, 20),
    "max": (max, 1, 20),
    "abs": (abs, 1, 1),
    "any": (any, 1, 1),
    "all": (all, 1, 1),
    "sum": (_fn_sum, 1, 2),
    "int": (_fn_int, 0, 2),
    "str": (_fn_str, 0, 1),
    "float": (_fn_float, 0, 1),
    "bool": (bool, 0, 1),
    "round": (_fn_round, 1, 2),
}
assert set(_FUNCTIONS) == ALLOWED_FUNCTIONS


class _Interpreter:
    """Walks a checked tree; only node types admitted by `_check_node` can appear here."""

    __slots__ = ("names",)

    def __init__(self, names: Mapping[str, Any]) -> None:
        self.names = names

    def run(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return self.run(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            try:
                value = self.names[node.id]
            except KeyError:
                raise ExpressionNameError(
                    f"name {node.id!r} is not defined in the task data"
                ) from None
            return _require_value(value, f"name {node.id!r}")
        if isinstance(node, ast.BoolOp):
            is_and = isinstance(node.op, ast.And)
            result: Any = None
            for value_node in node.values:
                result = self.run(value_node)
                if is_and and not result:
                    return result
                if not is_and and result:
                    return result
            return result
        if isinstance(node, ast.Compare):
            left = self.run(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self.run(comparator)
                if not _COMPARE_OPS[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.UnaryOp):
            operand = self.run(node.operand)
            if isinstance(node.op, ast.Not):
                return not operand
            if isinstance(node.op, ast.USub):
                return -operand
            return +operand
        if isinstance(node, ast.BinOp):
            left = self.run(node.left)
            right = self.run(node.right)
            return _require_value(_BIN_IMPL[type(node.op)](left, right), "result")
        if isinstance(node, ast.IfExp):
            return self.run(node.body) if self.run(node.test) else self.run(node.orelse)
        if isinstance(node, ast.Subscript):
            container = self.run(node.value)
            if not isinstance(container, str | list | tuple | dict):
                raise TypeError(f"{type(container).__name__} is not subscriptable here")
            if isinstance(node.slice, ast.Slice):
                if isinstance(container, dict):
                    raise TypeError("cannot slice a dict")
                lower = self.run(node.slice.lower) if node.slice.lower else None
                upper = self.run(node.slice.upper) if node.slice.upper else None
                step = self.run(node.slice.step) if node.slice.step else None
                return container[lower:upper:step]
            return _require_value(container[self.run(node.slice)], "subscript")
        if isinstance(node, ast.List):
            return [self.run(e) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(self.run(e) for e in node.elts)
        if isinstance(node, ast.Set):
            return {self.run(e) for e in node.elts}
        if isinstance(node, ast.Dict):
            return {
                self.run(k): self.run(v)
                for k, v in zip(node.keys, node.values, strict=True)
                if k is not None
            }
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            impl, low, high = _FUNCTIONS[node.func.id]
            if not low <= len(node.args) <= high:
                raise TypeError(f"{node.func.id}() takes {low} to {high} arguments")
            args = [self.run(a) for a in node.args]
            return _require_value(impl(*args), f"{node.func.id}() result")
        raise UnsafeExpression(f"{_describe(node)} is not allowed")  # pragma: no cover


def evaluate(expr: str, data: Mapping[str, Any]) -> Any:
    """Check `expr` and evaluate it over `data` (task data); never executes Python code."""
    if not isinstance(expr, str):
        raise UnsafeExpression("expression must be a string")
    tree = _compile(expr)
    return _Interpreter(data).run(tree)


# --------------------------------------------------------------------------- SpiffWorkflow glue


class SandboxEnvironment(BasePythonScriptEngineEnvironment):  # type: ignore[misc]
    """Replaces TaskDataEnvironment: SpiffWorkflow also calls `environment.evaluate` directly
    (process completion conditions, message correlations), so the sandbox must sit here too."""

    def __init__(self) -> None:
        super().__init__({})

    def evaluate(
        self,
        expression: str,
        context: Mapping[str, Any],
        external_context: Mapping[str, Any] | None = None,
    ) -> Any:
        scope: dict[str, Any] = dict(external_context or {})
        scope.update(context)
        return evaluate(expression, scope)

    def execute(
        self,
        script: str,
        context: Mapping[str, Any],
        external_context: Mapping[str, Any] | None = None,
    ) -> Any:
        raise ScriptsDisabled("script tasks are disabled")

    def call_service(self, context: Mapping[str, Any], **kwargs: Any) -> Any:
        raise ScriptsDisabled("service tasks are disabled")


class SandboxScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """The only script engine Lotsen attaches to workflows: expressions go through our
    interpreter, scripts and service calls are always refused."""

    def __init__(self) -> None:
        super().__init__(environment=SandboxEnvironment())

    def validate(self, expression: str) -> None:
        check_expression(expression)

    def evaluate(
        self, task: Any, expression: str, external_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except SpiffWorkflowException as exc:
            exc.add_note(f"Error evaluating expression {expression[:200]!r}")
            raise
        except Exception as exc:
            raise WorkflowTaskException(
                f"Error evaluating expression {expression[:200]!r}: {exc}",
                task=task,
                exception=exc,
            ) from exc

    def execute(
        self, task: Any, script: str, external_context: Mapping[str, Any] | None = None
    ) -> Any:
        raise WorkflowTaskException(
            "script tasks are disabled", task=task, exception=ScriptsDisabled()
        )

    def call_service(self, task: Any, **kwargs: Any) -> Any:
        raise WorkflowTaskException(
            "service tasks are disabled", task=task, exception=ScriptsDisabled()
        )
