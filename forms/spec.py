"""Form specs: parse and check the JSON form format described in bpmn/README.md.

A spec is data written by a process owner, so every problem is collected and reported at once
(publish time), and nothing downstream has to second-guess a loaded `FormSpec`.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIELD_TYPES = frozenset(
    {
        "textfield",
        "textarea",
        "number",
        "checkbox",
        "checklist",
        "radio",
        "select",
        "date",
        "datetime",
        "personnummer",
    }
)
STATIC_TYPES = frozenset({"text"})
CHOICE_TYPES = frozenset({"checklist", "radio", "select"})
STRING_TYPES = frozenset({"textfield", "textarea"})
LANGUAGES = ("sv", "en")

VALIDATE_RULES: Mapping[str, frozenset[str]] = {
    "required": FIELD_TYPES,
    "min": frozenset({"number"}),
    "max": frozenset({"number"}),
    "minLength": STRING_TYPES,
    "maxLength": STRING_TYPES,
    "pattern": STRING_TYPES,
}

#: Which component types may fill which field of the case subject's record.
SUBJECT_FIELD_TYPES: Mapping[str, frozenset[str]] = {
    "name": frozenset({"textfield"}),
    "alias": frozenset({"textfield", "textarea"}),
    "personnummer": frozenset({"personnummer"}),
    "birth_date": frozenset({"date"}),
    "estimated_age": frozenset({"number", "textfield", "select", "radio"}),
    "age_doubt": frozenset({"checkbox"}),
    "gender": frozenset({"select", "radio", "textfield"}),
    "citizenship": frozenset({"select", "radio", "textfield"}),
    "protected_identity_type": frozenset({"select", "radio"}),
}

#: Hard caps applied when a spec gives no `maxLength` (positive validation: nothing unbounded).
DEFAULT_MAX_LENGTH: Mapping[str, int] = {"textfield": 1000, "textarea": 20000}
MAX_PATTERN_LENGTH = 500

#: Names a data key may not take: they collide with attributes/arguments of WTForms forms or with
#: names the web layer posts next to the form's own fields.
RESERVED_KEYS = frozenset(
    {
        "data",
        "errors",
        "form_errors",
        "meta",
        "process",
        "populate_obj",
        "validate",
        "validate_on_submit",
        "is_submitted",
        "hidden_tag",
        "csrf_token",
        "submit",
        "save_draft",
        "action",
        "approve",
        "submission_id",
        "expected_version",
        "version",
        "formdata",
        "obj",
        "prefix",
        "extra_filters",
        "next",
        "hidden_keys",
        "spec",
        "lang",
    }
)
EXPRESSION_FUNCTIONS = frozenset(
    {"len", "min", "max", "abs", "any", "all", "sum", "int", "str", "float", "bool", "round"}
)
_KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")


class FormSpecError(ValueError):
    """A form spec is malformed; `problems` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid form spec: " + "; ".join(self.problems))


@dataclass(frozen=True)
class LocalText:
    """A text in Swedish and English (either may be empty)."""

    sv: str = ""
    en: str = ""

    def get(self, lang: str) -> str:
        return label_for(self, lang)


Text = str | LocalText | Mapping[str, str] | None


def label_for(text: Text, lang: str) -> str:
    """Pick `lang` from a bilingual text, falling back to Swedish, then English."""
    if text is None:
        return ""
    if isinstance(text, str):
        return text
    if isinstance(text, LocalText):
        options = {"sv": text.sv, "en": text.en}
    else:
        options = {k: v for k, v in text.items() if isinstance(v, str)}
    for candidate in (lang, "sv", "en"):
        value = options.get(candidate)
        if value:
            return value
    return ""


@dataclass(frozen=True)
class Option:
    """One fixed value of a radio, select or checklist."""

    value: str
    label: LocalText


@dataclass(frozen=True)
class Validate:
    """Validation rules of a component (`validate` in the spec)."""

    required: bool = False
    min: int | float | None = None
    max: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None


@dataclass(frozen=True)
class Component:
    """One component of a form: a data field (with `key`) or static text (`type == "text"`)."""

    type: str
    key: str | None = None
    label: LocalText = LocalText()
    description: LocalText = LocalText()
    text: LocalText = LocalText()
    values: tuple[Option, ...] = ()
    validate: Validate = Validate()
    hide: str | None = None
    sensitive: bool = False
    subject_field: str | None = None

    @property
    def is_field(self) -> bool:
        return self.key is not None

    @property
    def required(self) -> bool:
        return self.validate.required

    @property
    def max_length(self) -> int | None:
        """The effective maximum length (the spec's, else the default cap for free text)."""
        if self.validate.max_length is not None:
            return self.validate.max_length
        return DEFAULT_MAX_LENGTH.get(self.type)

    @property
    def empty_value(self) -> Any:
        """The task-data value of this field when empty or hidden."""
        if self.type == "checklist":
            return []
        if self.type == "checkbox":
            return False
        return None

    @property
    def value_set(self) -> frozenset[str]:
        return frozenset(option.value for option in self.values)

    def label_text(self, lang: str) -> str:
        return label_for(self.label, lang)

    def description_text(self, lang: str) -> str:
        return label_for(self.description, lang)

    def option_label(self, value: Any, lang: str) -> str:
        for option in self.values:
            if option.value == value:
                return label_for(option.label, lang) or option.value
        return "" if value is None else str(value)

    def text_blocks(self, lang: str) -> tuple[tuple[str, str], ...]:
        """Static text as (kind, text) blocks: `h2`/`h3` for lines starting `#`/`##`, else `p`."""
        blocks: list[tuple[str, str]] = []
        for chunk in re.split(r"\n\s*\n", label_for(self.text, lang)):
            chunk = chunk.strip()
            if chunk.startswith("## "):
                blocks.append(("h3", chunk[3:].strip()))
            elif chunk.startswith("# "):
                blocks.append(("h2", chunk[2:].strip()))
            elif chunk:
                blocks.append(("p", chunk))
        return tuple(blocks)


@dataclass(frozen=True)
class FormSpec:
    """A checked form spec. Build it with `load_form_spec`."""

    id: str
    title: LocalText
    components: tuple[Component, ...]
    _by_key: Mapping[str, Component] = field(
        default_factory=dict, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        by_key = {c.key: c for c in self.components if c.key is not None}
        object.__setattr__(self, "_by_key", by_key)

    @property
    def fields(self) -> tuple[Component, ...]:
        """The components that hold data, in order."""
        return tuple(c for c in self.components if c.key is not None)

    @property
    def keys(self) -> tuple[str, ...]:
        """The declared data keys, in order."""
        return tuple(c.key for c in self.components if c.key is not None)

    @property
    def sensitive_keys(self) -> frozenset[str]:
        return frozenset(c.key for c in self.components if c.key is not None and c.sensitive)

    @property
    def subject_fields(self) -> dict[str, str]:
        """{data key: subject record field} for intake forms."""
        return {
            c.key: c.subject_field
            for c in self.components
            if c.key is not None and c.subject_field is not None
        }

    def title_for(self, lang: str) -> str:
        return label_for(self.title, lang)

    def component(self, key: str) -> Component:
        """The component declaring `key`; KeyError when the form has no such key."""
        return self._by_key[key]

    def option_label(self, key: str, value: Any, lang: str) -> str:
        """The label of an enum value of field `key` (the value itself when not declared)."""
        return self.component(key).option_label(value, lang)

    def empty_data(self) -> dict[str, Any]:
        """Every declared key with its empty value."""
        return {c.key: c.empty_value for c in self.fields if c.key is not None}


# --- expressions (the engine's sandbox, imported lazily) ---------------------------------------


def _expressions() -> tuple[Callable[[str], None], Callable[[str, Mapping[str, Any]], Any]]:
    """The engine's `check_expression` and `evaluate`, imported lazily (may be absent)."""
    from engine.workflow.expressions import check_expression, evaluate

    return check_expression, evaluate


def hidden_keys(spec: FormSpec, values: Mapping[str, Any]) -> frozenset[str]:
    """The keys whose `conditional.hide` is true for `values` (task-data shaped).

    Hidden fields count as empty while the other conditions are evaluated, repeated until stable,
    so a field that depends on a hidden field sees what will be stored. A condition that fails to
    evaluate (a type error on odd input, say) leaves its field visible, and so required.
    """
    conditional = [c for c in spec.fields if c.hide and c.key is not None]
    if not conditional:
        return frozenset()
    _, evaluate = _expressions()
    hidden: frozenset[str] = frozenset()
    for _ in range(len(conditional) + 1):
        current = {
            c.key: (c.empty_value if c.key in hidden else values.get(c.key, c.empty_value))
            for c in spec.fields
            if c.key is not None
        }
        now: set[str] = set()
        for component in conditional:
            assert component.hide is not None and component.key is not None
            try:
                result = evaluate(component.hide, current)
            except Exception:  # noqa: S112 - an unevaluable condition keeps the field visible
                continue
            if result:
                now.add(component.key)
        if frozenset(now) == hidden:
            break
        hidden = frozenset(now)
    return hidden


# --- loading ------------------------------------------------------------------------------------


def load_form_spec_file(path: str | Path) -> FormSpec:
    """Read and check a form spec JSON file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormSpecError([f"{path}: cannot read JSON: {exc}"]) from exc
    if not isinstance(data, Mapping):
        raise FormSpecError([f"{path}: a form spec must be a JSON object"])
    return load_form_spec(data)


def load_form_spec(data: Mapping[str, Any]) -> FormSpec:
    """Parse and check a form spec dict; raise `FormSpecError` listing every problem."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise FormSpecError(["a form spec must be an object"])
    spec_id = data.get("id")
    if not isinstance(spec_id, str) or not spec_id.strip():
        problems.append("`id` must be a non-empty string")
        spec_id = ""
    title = _text(data.get("title"), "title", problems, required=False)
    raw_components = data.get("components")
    components: list[Component] = []
    if not isinstance(raw_components, list):
        problems.append("`components` must be a list")
        raw_components = []
    seen_keys: set[str] = set()
    seen_subject: set[str] = set()
    for index, raw in enumerate(raw_components):
        where = f"components[{index}]"
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: must be an object")
            continue
        component = _component(raw, where, problems)
        if component is None:
            continue
        if component.key is not None:
            if component.key in seen_keys:
                problems.append(f"{where}: duplicate key {component.key!r}")
            seen_keys.add(component.key)
        if component.subject_field is not None:
            if component.subject_field in seen_subject:
                problems.append(f"{where}: subjectField {component.subject_field!r} used twice")
            seen_subject.add(component.subject_field)
        components.append(component)
    for index, component in enumerate(components):
        if component.hide is not None:
            _check_hide(component.hide, seen_keys, f"component {component.key or index}", problems)
    if problems:
        raise FormSpecError(problems)
    return FormSpec(id=str(spec_id), title=title, components=tuple(components))


def _component(raw: Mapping[str, Any], where: str, problems: list[str]) -> Component | None:
    ctype = raw.get("type")
    if not isinstance(ctype, str) or ctype not in FIELD_TYPES | STATIC_TYPES:
        problems.append(f"{where}: unknown type {ctype!r}")
        return None
    hide = _hide(raw.get("conditional"), where, problems)
    if ctype in STATIC_TYPES:
        if "key" in raw:
            problems.append(f"{where}: a `text` component has no key")
        text = _text(raw.get("text"), f"{where}.text", problems, required=True)
        return Component(type=ctype, text=text, hide=hide)

    key = raw.get("key")
    where = f"{where} ({key})" if isinstance(key, str) else where
    if not isinstance(key, str) or not key:
        problems.append(f"{where}: missing key")
        key = None
    elif (
        not _KEY_RE.fullmatch(key)
        or keyword.iskeyword(key)
        or key in RESERVED_KEYS
        or key in EXPRESSION_FUNCTIONS
        or key.startswith(("validate_", "filter_"))
    ):
        problems.append(
            f"{where}: key must be lower_snake_case, not a reserved name or Python keyword"
        )
    label = _text(raw.get("label"), f"{where}.label", problems, required=True)
    description = _text(raw.get("description"), f"{where}.description", problems, required=False)
    values = _values(raw.get("values"), ctype, where, problems)
    validate = _validate(raw.get("validate"), ctype, where, problems)
    sensitive = raw.get("sensitive", False)
    if not isinstance(sensitive, bool):
        problems.append(f"{where}: `sensitive` must be true or false")
        sensitive = False
    subject_field = raw.get("subjectField")
    if subject_field is not None:
        allowed = SUBJECT_FIELD_TYPES.get(subject_field) if isinstance(subject_field, str) else None
        if allowed is None:
            problems.append(f"{where}: unknown subjectField {subject_field!r}")
            subject_field = None
        elif ctype not in allowed:
            problems.append(f"{where}: subjectField {subject_field!r} cannot be a {ctype}")
    return Component(
        type=ctype,
        key=key if isinstance(key, str) and key else None,
        label=label,
        description=description,
        values=values,
        validate=validate,
        hide=hide,
        sensitive=sensitive,
        subject_field=subject_field,
    )


def _text(raw: Any, where: str, problems: list[str], *, required: bool) -> LocalText:
    if raw is None:
        if required:
            problems.append(f"{where}: missing")
        return LocalText()
    if isinstance(raw, str):
        if required and not raw.strip():
            problems.append(f"{where}: empty")
        return LocalText(sv=raw, en=raw)
    if isinstance(raw, Mapping):
        unknown = set(raw) - set(LANGUAGES)
        if unknown:
            problems.append(f"{where}: unknown languages {sorted(unknown)}")
        if not all(isinstance(raw.get(lang, ""), str) for lang in LANGUAGES):
            problems.append(f"{where}: translations must be strings")
            return LocalText()
        sv, en = raw.get("sv", ""), raw.get("en", "")
        if required and not (sv.strip() or en.strip()):
            problems.append(f"{where}: empty")
        return LocalText(sv=sv, en=en)
    problems.append(f"{where}: must be a string or {{'sv', 'en'}}")
    return LocalText()


def _values(raw: Any, ctype: str, where: str, problems: list[str]) -> tuple[Option, ...]:
    if ctype not in CHOICE_TYPES:
        if raw is not None:
            problems.append(f"{where}: `values` only belongs on radio, select and checklist")
        return ()
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: `values` must be a non-empty list")
        return ()
    options: list[Option] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        here = f"{where}.values[{index}]"
        if not isinstance(item, Mapping):
            problems.append(f"{here}: must be an object with `value` and `label`")
            continue
        value = item.get("value")
        if not isinstance(value, str) or not value.strip() or value != value.strip():
            problems.append(f"{here}: `value` must be a non-empty string without outer spaces")
            continue
        if value in seen:
            problems.append(f"{here}: duplicate value {value!r}")
            continue
        seen.add(value)
        options.append(
            Option(value=value, label=_text(item.get("label"), here, problems, required=True))
        )
    return tuple(options)


def _validate(raw: Any, ctype: str, where: str, problems: list[str]) -> Validate:
    if raw is None:
        return Validate()
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: `validate` must be an object")
        return Validate()
    for rule in raw:
        types = VALIDATE_RULES.get(rule)
        if types is None:
            problems.append(f"{where}: unknown validate rule {rule!r}")
        elif ctype not in types:
            problems.append(f"{where}: validate rule {rule!r} does not apply to {ctype}")
    required = raw.get("required", False)
    if not isinstance(required, bool):
        problems.append(f"{where}: validate.required must be true or false")
        required = False

    def number(name: str) -> int | float | None:
        value = raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            problems.append(f"{where}: validate.{name} must be a number")
            return None
        return value

    def length(name: str) -> int | None:
        value = raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(f"{where}: validate.{name} must be a non-negative integer")
            return None
        return value

    low, high = number("min"), number("max")
    if low is not None and high is not None and low > high:
        problems.append(f"{where}: validate.min is greater than validate.max")
    min_length, max_length = length("minLength"), length("maxLength")
    if min_length is not None and max_length is not None and min_length > max_length:
        problems.append(f"{where}: validate.minLength is greater than validate.maxLength")
    pattern = raw.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_LENGTH:
            problems.append(f"{where}: validate.pattern must be a non-empty string")
            pattern = None
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(f"{where}: validate.pattern is not a valid regex: {exc}")
                pattern = None
    return Validate(
        required=required,
        min=low,
        max=high,
        min_length=min_length,
        max_length=max_length,
        pattern=pattern,
    )


def _hide(raw: Any, where: str, problems: list[str]) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) - {"hide"}:
        problems.append(f"{where}: `conditional` must be an object with only `hide`")
        return None
    hide = raw.get("hide")
    if hide is None:
        return None
    if not isinstance(hide, str) or not hide.strip():
        problems.append(f"{where}: conditional.hide must be a non-empty expression string")
        return None
    # form-js writes FEEL expressions as "=expr"; accept that prefix.
    return hide.strip().removeprefix("=").strip()


def _check_hide(expr: str, keys: set[str], where: str, problems: list[str]) -> None:
    check_expression, _ = _expressions()
    try:
        check_expression(expr)
    except Exception as exc:  # the engine's UnsafeExpression, or a syntax error
        problems.append(f"{where}: conditional.hide {expr!r} is refused: {exc}")
        return
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        problems.append(f"{where}: conditional.hide {expr!r} is not an expression: {exc.msg}")
        return
    allowed = keys | EXPRESSION_FUNCTIONS | {"True", "False", "None"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in allowed:
            problems.append(f"{where}: conditional.hide names {node.id!r}, not a key of this form")
