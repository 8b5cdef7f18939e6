"""Process-owner workspace: modeler, form editor, versions, checker, diff, migration (issue 5).

Routes are thin: every rule (who may edit, four eyes, what may migrate) is in
``engine.workspace``; this module turns its answers into pages and JSON for the modeler.
Only process owners get in (``can_edit_processes``); the case diagram is for whoever may read
the case, judged by ``engine.access.access_case`` like the case page itself.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, MultipleFileField
from sqlalchemy import select
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from engine import access
from engine import workspace as ws
from engine.catalogs import decision_types, legal_refs
from engine.errors import Forbidden, LotsenError, ValidationFailed
from engine.models import OpenTask, ProcessInstance, ProcessVersion, User
from engine.processes import model_for
from engine.roles import load_roles
from engine.workflow.xmlsafe import MAX_BPMN_BYTES
from forms import FormSpecError, bind_form, load_form_spec
from webapp.blueprints.auth import fresh_auth_required
from webapp.security import DOWNLOAD_CSP, login_required

bp = Blueprint("workspace", __name__, url_prefix="/workspace")

F = TypeVar("F", bound=Callable[..., Any])

#: Largest upload (a .bpmn file or a form spec) read into memory: the engine's own limit.
MAX_UPLOAD_BYTES = MAX_BPMN_BYTES
MAX_FORM_FILES = 60
REASON_MAX = 2000
FORM_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
MAX_ID = 2**31 - 1

STATUS_LABELS = {
    "draft": _l("Draft"),
    "submitted": _l("Submitted"),
    "published": _l("Published"),
    "rejected": _l("Rejected"),
}


def owner_required(view: F) -> F:
    """Process owners only (the engine says who that is); anonymous visitors log in first."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not ws.can_edit_processes(g.actor):
            # the refusal is logged naming the version asked for (the error handler writes it)
            version_id = kwargs.get("version_id")
            raise Forbidden(
                "only process owners may use the workspace",
                denied_kind="process_version" if version_id is not None else None,
                denied_id=str(version_id) if version_id is not None else None,
            )
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


# --- forms ---------------------------------------------------------------------------------------


class UploadForm(FlaskForm):  # type: ignore[misc]
    """A .bpmn file, and optionally its form specs (``<form_key>.json`` each)."""

    bpmn = FileField(
        _l("BPMN file (.bpmn), or a zip as the download gives it"),
        render_kw={"accept": ".bpmn,.xml,.zip"},
    )
    forms = MultipleFileField(
        _l("Form specs (.json, optional)"),
        description=_l("One file per form, named after its form key: identification_intake.json"),
        render_kw={"accept": ".json,application/json"},
    )


class RejectForm(FlaskForm):  # type: ignore[misc]
    """Why a submitted version goes back to its author."""

    reason = TextAreaField(
        _l("Reason"),
        validators=[
            DataRequired(message=_l("Say why the version is rejected.")),
            Length(max=REASON_MAX, message=_l("At most %(max)d characters.")),
        ],
    )


# --- helpers -------------------------------------------------------------------------------------


def _version_or_404(version_id: int) -> ProcessVersion:
    if not 0 < version_id <= MAX_ID:
        abort(404)
    return ws.get_version(g.db, version_id)  # NotFound (404, audited) when there is none


def _user_names(ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = g.db.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {row.id: row.display_name for row in rows}


def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


def problem_text(problem: Mapping[str, Any]) -> str:
    """A checker problem in the reader's language (the other language if one is missing)."""
    first, second = ("message_en", "message_sv") if g.lang == "en" else ("message_sv", "message_en")
    return str(problem.get(first) or problem.get(second) or problem.get("code") or "")


def _problems_of(result: Any) -> list[dict[str, Any]]:
    return list(result.as_dict()["problems"]) if result is not None else []


def _engine_message(exc: LotsenError) -> str:
    """The engine's refusal, with the field messages of a validation failure."""
    parts = [exc.message or str(exc)]
    if isinstance(exc, ValidationFailed):
        parts.extend(m for messages in exc.field_errors.values() for m in messages)
    return " ".join(parts)


@dataclass(frozen=True)
class VersionRow:
    """One version as the workspace lists it: status and who did what."""

    version: ProcessVersion
    status_label: str
    author: str | None
    submitted_by: str | None
    decided_by: str | None


def _rows(versions: list[ProcessVersion]) -> list[VersionRow]:
    names = _user_names(
        uid
        for v in versions
        for uid in (
            getattr(v, "author_id", None),
            getattr(v, "submitted_by_id", None),
            v.published_by_id,
            getattr(v, "rejected_by_id", None),
        )
    )

    def name(uid: int | None) -> str | None:
        return names.get(uid) if uid is not None else None

    return [
        VersionRow(
            version=v,
            status_label=status_label(v.status),
            author=name(getattr(v, "author_id", None)),
            submitted_by=name(getattr(v, "submitted_by_id", None)),
            decided_by=name(
                v.published_by_id if v.status == "published" else getattr(v, "rejected_by_id", None)
            ),
        )
        for v in versions
    ]


def _catalogs() -> dict[str, Any]:
    """What the side panel offers: lane roles, decision types, legal references."""
    roles = [r for r in load_roles().values() if r.lane]
    return {
        "lane_roles": [(r.id, r.label(g.lang)) for r in roles],
        "decision_types": sorted((key, dt.label(g.lang)) for key, dt in decision_types().items()),
        "legal_refs": sorted((key, ref.label(g.lang)) for key, ref in legal_refs().items()),
    }


def _json_body() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


def _editor_strings() -> dict[str, str]:
    """UI text the modeler's script shows (translated here, passed as a data- attribute)."""
    return {
        "saving": _("Saving…"),
        "loaded": _("The diagram is loaded. Select an element to edit its properties."),
        "load_failed": _("The diagram could not be loaded."),
        "empty_diagram": _(
            "The file has no drawable diagram (its layout part names no element); "
            "fix it in the tool it came from, or draw the procedure here."
        ),
        "import_warnings": _(
            "The diagram is loaded with %(count)s warnings; check it before you save."
        ),
        "saved_ok": _("Saved as draft version %(number)s. The checker found no problems."),
        "saved_problems": _(
            "Saved as draft version %(number)s. The checker found problems; see the list."
        ),
        "save_failed": _("Not saved:"),
        "session_lost": _(
            "your login has ended. Log in again in another tab and save again; "
            "keep this page open and nothing is lost."
        ),
        "save_failed_status": _("the server answered"),
        "check_ok": _("The checker found no problems."),
        "problem_count": _("Problems found by the checker: %(count)s."),
        "unknown_role": _("%(name)s (not a known role)"),
        "no_role": _("(no role)"),
        "form_json_invalid": _(
            "The form %(key)s is not valid JSON; correct it before you save (nothing was lost)."
        ),
        "invalid_json": _("Not valid JSON: %(error)s"),
        "invalid_spec": _("The form spec has problems:"),
        "preview_failed": _("The preview could not be shown."),
        "bad_form_key": _(
            "A form key starts with a letter and has only letters, digits and underscores."
        ),
    }


# --- the version list ----------------------------------------------------------------------------


@bp.route("/")
@owner_required
def index() -> Any:
    """Every procedure with its versions, newest first: status and who did what."""
    versions = list(ws.list_versions(g.db))
    groups: dict[str, list[ProcessVersion]] = {}
    for v in sorted(versions, key=lambda v: (v.process_id, -v.number)):
        groups.setdefault(v.process_id, []).append(v)
    procedures = [
        {"process_id": pid, "name": vs[0].name, "rows": _rows(vs)} for pid, vs in groups.items()
    ]
    return render_template("workspace/index.html", procedures=procedures)


@bp.route("/versions/<int:version_id>")
@owner_required
def version(version_id: int) -> Any:
    """One version: status, history, the checker's problems and what can be done next."""
    v = _version_or_404(version_id)
    siblings = [x for x in ws.list_versions(g.db, v.process_id) if x.id != v.id]
    (row,) = _rows([v])
    return render_template(
        "workspace/version.html",
        row=row,
        v=v,
        problems=list(getattr(v, "problems", None) or []),
        siblings=sorted(siblings, key=lambda x: -x.number),
        reject_form=RejectForm(),
        is_editor=g.actor.user_id in _editors(v),
    )


def _editors(v: ProcessVersion) -> set[int]:
    ids = set(getattr(v, "editor_ids", None) or [])
    for attr in ("author_id", "submitted_by_id"):
        uid = getattr(v, attr, None)
        if uid is not None:
            ids.add(uid)
    return ids


@bp.route("/versions/<int:version_id>/model.json")
@owner_required
def model(version_id: int) -> Any:
    """The version's BPMN and form specs for the modeler and the viewer."""
    v = _version_or_404(version_id)
    return jsonify(
        {
            "version_id": v.id,
            "process_id": v.process_id,
            "number": v.number,
            "status": v.status,
            "bpmn": v.bpmn_xml,
            "forms": v.forms or {},
            "problems": list(getattr(v, "problems", None) or []),
        }
    )


# --- modeler and saving --------------------------------------------------------------------------


@bp.route("/versions/<int:version_id>/edit")
@owner_required
def modeler(version_id: int) -> Any:
    """The modeler on a version: a draft is saved in place, anything else as a new draft."""
    v = _version_or_404(version_id)
    return render_template(
        "workspace/modeler.html",
        v=v,
        status=status_label(v.status),
        save_into=v.id if v.status == "draft" else None,
        base_id=v.id if v.status == "published" else None,
        strings=_editor_strings(),
        **_catalogs(),
    )


def _save_answer(version: ProcessVersion, result: Any) -> dict[str, Any]:
    return {
        "version_id": version.id,
        "number": version.number,
        "status": version.status,
        "ok": bool(result.ok),
        "problems": _problems_of(result),
        "version_url": url_for("workspace.version", version_id=version.id),
        "modeler_url": url_for("workspace.modeler", version_id=version.id),
    }


def _parse_forms(raw: Any) -> dict[str, Any] | None:
    """Form specs from the request: a JSON object of form key -> spec (None when not)."""
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, dict):
        return None
    if not all(isinstance(k, str) and FORM_KEY_RE.match(k) for k in raw):
        return None
    return raw


def _target_id(raw: Any) -> int | None:
    if raw in (None, ""):
        return None
    text = str(raw).strip()
    if not text.isdigit() or not 0 < int(text) <= MAX_ID:
        abort(400)
    return int(text)


@bp.route("/save", methods=["POST"])
@owner_required
def save() -> Any:
    """Store the modeler's XML and forms as a draft; the checker's problems come back.

    The modeler posts JSON (with the CSRF header); a plain form post (``bpmn``, ``forms``,
    ``version_id``) works too and lands on the version page.
    """
    body = _json_body()
    as_json = body is not None
    source: Mapping[str, Any] = body if body is not None else request.form
    bpmn = source.get("bpmn")
    target = _target_id(source.get("version_id"))
    base = None if target is not None else _target_id(source.get("base_version_id"))
    if as_json or "forms" in source:
        forms = _parse_forms(source.get("forms", {}))
    else:  # the plain XML form keeps the forms of the version it was opened on
        stored = target or base
        forms = dict(_version_or_404(stored).forms or {}) if stored is not None else {}
    filename = source.get("filename") or None
    errors = []
    if not isinstance(bpmn, str) or not bpmn.strip():
        errors.append(_("The BPMN XML is missing."))
    elif len(bpmn.encode("utf-8")) > MAX_UPLOAD_BYTES:
        errors.append(_("The BPMN XML is too large."))
    if forms is None:
        errors.append(_("The form specs must be a JSON object of form key to spec."))
    if filename is not None and (not isinstance(filename, str) or len(filename) > 255):
        filename = None
    if errors:
        if as_json:
            return jsonify({"error": "Invalid data", "message": " ".join(errors)}), 422
        for message in errors:
            flash(message, "error")
        return redirect(url_for("workspace.index"), code=303)
    assert isinstance(bpmn, str) and forms is not None  # (checked above)
    try:
        version, result = ws.save_draft(
            g.db,
            g.actor,
            bpmn_xml=bpmn,
            forms=forms,
            filename=filename,
            version_id=target,
            base_version_id=base,
        )
    except LotsenError as exc:
        if not as_json:
            raise
        g.rollback_only = True
        return jsonify({"error": "Refused", "message": _engine_message(exc)}), exc.status
    if as_json:
        return jsonify(_save_answer(version, result))
    if result.ok:
        flash(_("Saved. The checker found no problems."), "success")
    else:
        flash(_("Saved as a draft. The checker found problems; see the list."), "error")
    return redirect(url_for("workspace.version", version_id=version.id), code=303)


@bp.route("/forms/preview", methods=["POST"])
@owner_required
def preview_form() -> Any:
    """A form spec rendered by the caseworkers' form builder, or the spec's problems.

    JSON in (``{"spec": {...}}``), JSON out (``{"ok", "html"}``); a plain form post with
    ``spec`` as text gets a page with the preview and the text kept.
    """
    body = _json_body()
    if body is not None:
        spec_raw: Any = body.get("spec")
    else:
        text = request.form.get("spec", "")
        try:
            spec_raw = json.loads(text)
        except ValueError as exc:
            return render_template(
                "workspace/preview.html", text=text, preview=None, problems=[str(exc)]
            ), 422
    built, problems = _build_preview(spec_raw)
    if body is not None:
        html = render_template("workspace/_form_preview.html", **built) if built else None
        return jsonify({"ok": built is not None, "html": html, "problems": problems})
    return render_template(
        "workspace/preview.html",
        text=request.form.get("spec", ""),
        preview=built,
        problems=problems,
    ), (200 if built is not None else 422)


def _build_preview(raw: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """The bound form and spec to render (as caseworkers see it), or the spec's problems."""
    if not isinstance(raw, dict):
        return None, [_("A form spec must be a JSON object.")]
    try:
        spec = load_form_spec(raw)
        form = bind_form(spec, g.lang, meta={"csrf": False})
    except FormSpecError as exc:
        return None, exc.problems
    except (TypeError, ValueError) as exc:  # a spec the builder cannot turn into fields
        return None, [str(exc)]
    return {"form": form, "spec": spec}, []


# --- upload and download -------------------------------------------------------------------------


def _read_upload(storage: Any) -> bytes | None:
    data: bytes = storage.stream.read(MAX_UPLOAD_BYTES + 1)
    return None if len(data) > MAX_UPLOAD_BYTES else data


@bp.route("/upload", methods=["GET", "POST"])
@owner_required
def upload() -> Any:
    """A .bpmn file (and its form specs) becomes a new draft; refused files list the problems."""
    form = UploadForm()
    if request.method == "GET":
        return render_template("workspace/upload.html", form=form, problems=[])
    if not form.validate_on_submit():
        return render_template("workspace/upload.html", form=form, problems=[]), 422
    storage = form.bpmn.data
    if storage is None or not getattr(storage, "filename", ""):
        form.bpmn.errors = [_("Choose a .bpmn file.")]
        return render_template("workspace/upload.html", form=form, problems=[]), 422
    data = _read_upload(storage)
    if data is None:
        form.bpmn.errors = [
            _("The file is larger than %(size)s MB.", size=MAX_UPLOAD_BYTES // (1024 * 1024))
        ]
        return render_template("workspace/upload.html", form=form, problems=[]), 422
    filename = storage.filename
    forms, form_errors = _uploaded_forms(form.forms.data or [])
    if filename.lower().endswith(".zip") and not form_errors:
        # a zip as the download gives it: <process>/<process>.bpmn and forms/<key>.json
        unpacked = _unzip(data)
        if isinstance(unpacked, str):
            form_errors = [unpacked]
        else:
            filename, data, zipped_forms = unpacked
            forms = {**zipped_forms, **forms}
    if form_errors:
        form.forms.errors = form_errors
        return render_template("workspace/upload.html", form=form, problems=[]), 422
    try:
        version, result = ws.import_file(
            g.db, g.actor, filename=filename, data=data, forms=forms or None
        )
    except LotsenError as exc:
        problems = getattr(exc, "details", {}).get("problems") or []
        g.rollback_only = True
        form.bpmn.errors = [_engine_message(exc)]
        return render_template(
            "workspace/upload.html", form=form, problems=_problem_dicts(problems)
        ), 422
    if version is None:
        g.rollback_only = True
        form.bpmn.errors = [_("The file was refused; the problems are listed below.")]
        return render_template(
            "workspace/upload.html", form=form, problems=_problems_of(result)
        ), 422
    if result.ok:
        flash(_("The file is stored as a draft. The checker found no problems."), "success")
    else:
        flash(
            _("The file is stored as a draft. The checker found problems; see the list."), "error"
        )
    return redirect(url_for("workspace.version", version_id=version.id), code=303)


def _unzip(data: bytes) -> tuple[str, bytes, dict[str, Any]] | str:
    """The model and form specs of a zip laid out like the download (or why it cannot be read)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [i for i in archive.infolist() if not i.is_dir()]
        if len(entries) > MAX_FORM_FILES + 1 or any(
            i.file_size > MAX_UPLOAD_BYTES for i in entries
        ):
            return str(_("The zip file holds too many or too large files."))
        models = [i for i in entries if i.filename.lower().endswith(".bpmn")]
        if len(models) != 1:
            return str(_("The zip file must hold exactly one .bpmn file."))
        forms: dict[str, Any] = {}
        for info in entries:
            name = info.filename.rsplit("/", 1)[-1]
            if info.filename.split("/")[-2:-1] != ["forms"] or not name.endswith(".json"):
                continue
            key = name[:-5]
            spec = json.loads(archive.read(info).decode("utf-8"))
            if not FORM_KEY_RE.match(key) or not isinstance(spec, dict):
                return str(_("%(name)s: a form spec must be a JSON object.", name=name))
            forms[key] = spec
        model = models[0]
        return model.filename.rsplit("/", 1)[-1], archive.read(model), forms
    except (zipfile.BadZipFile, UnicodeDecodeError, ValueError, RuntimeError):
        return str(_("The zip file cannot be read."))


def _problem_dicts(problems: Iterable[Any]) -> list[dict[str, Any]]:
    return [p.as_dict() if hasattr(p, "as_dict") else dict(p) for p in problems]


def _uploaded_forms(files: list[Any]) -> tuple[dict[str, Any], list[str]]:
    forms: dict[str, Any] = {}
    errors: list[str] = []
    chosen = [f for f in files if getattr(f, "filename", "")]
    if len(chosen) > MAX_FORM_FILES:
        return {}, [_("At most %(count)s form files.", count=MAX_FORM_FILES)]
    for storage in chosen:
        name = storage.filename.rsplit("/", 1)[-1]
        key = name[:-5] if name.lower().endswith(".json") else ""
        if not FORM_KEY_RE.match(key):
            errors.append(_("%(name)s: name a form file <form key>.json.", name=name))
            continue
        data = _read_upload(storage)
        try:
            spec = json.loads(data.decode("utf-8")) if data is not None else None
        except (UnicodeDecodeError, ValueError) as exc:
            errors.append(_("%(name)s: not valid JSON (%(error)s).", name=name, error=str(exc)))
            continue
        if not isinstance(spec, dict):
            errors.append(_("%(name)s: a form spec must be a JSON object.", name=name))
            continue
        forms[key] = spec
    return forms, errors


@bp.route("/versions/<int:version_id>/download")
@owner_required
def download(version_id: int) -> Any:
    """The version as a .bpmn file, or as a zip laid out like a bpmn/ procedure folder."""
    v = _version_or_404(version_id)
    stem = f"{v.process_id}-v{v.number}"
    if request.args.get("format") == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{v.process_id}/{v.process_id}.bpmn", v.bpmn_xml)
            for key, spec in sorted((v.forms or {}).items()):
                text = json.dumps(spec, ensure_ascii=False, indent=2) + "\n"
                archive.writestr(f"{v.process_id}/forms/{key}.json", text)
        body, mimetype, name = buffer.getvalue(), "application/zip", f"{stem}.zip"
    else:
        body, mimetype, name = v.bpmn_xml.encode("utf-8"), "application/xml", f"{stem}.bpmn"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    return response


# --- the life cycle ------------------------------------------------------------------------------


def _act(version_id: int, action: Callable[[], Any], done: str) -> Any:
    _version_or_404(version_id)
    try:
        action()
    except LotsenError as exc:
        if exc.status == 404:
            raise
        g.rollback_only = True
        flash(_engine_message(exc), "error")
    else:
        flash(done, "success")
    return redirect(url_for("workspace.version", version_id=version_id), code=303)


@bp.route("/versions/<int:version_id>/submit", methods=["POST"])
@owner_required
def submit(version_id: int) -> Any:
    """Send a draft for approval by a second process owner."""
    return _act(
        version_id,
        lambda: ws.submit(g.db, g.actor, version_id),
        _("Submitted. Another process owner must approve it before it is published."),
    )


@bp.route("/versions/<int:version_id>/approve", methods=["POST"])
@owner_required
@fresh_auth_required
def approve(version_id: int) -> Any:
    """Publish a submitted version (four eyes: never by its author; fresh password)."""
    return _act(
        version_id,
        lambda: ws.approve(g.db, g.actor, version_id),
        _("Published. New cases start on this version; running cases stay on theirs."),
    )


@bp.route("/versions/<int:version_id>/reject", methods=["POST"])
@owner_required
def reject(version_id: int) -> Any:
    """Send a submitted version back with a reason (the reason is kept on the version)."""
    v = _version_or_404(version_id)
    form = RejectForm()
    if not form.validate_on_submit():
        (row,) = _rows([v])
        siblings = [x for x in ws.list_versions(g.db, v.process_id) if x.id != v.id]
        return render_template(
            "workspace/version.html",
            row=row,
            v=v,
            problems=list(getattr(v, "problems", None) or []),
            siblings=sorted(siblings, key=lambda x: -x.number),
            reject_form=form,
            is_editor=g.actor.user_id in _editors(v),
        ), 422
    reason = (form.reason.data or "").strip()
    return _act(
        version_id,
        lambda: ws.reject(g.db, g.actor, version_id, reason),
        _("Rejected. The author can see your reason."),
    )


# --- diff, migration, scenarios ------------------------------------------------------------------


def _int_arg(name: str) -> int | None:
    raw = (request.args.get(name) or "").strip()
    return int(raw) if raw.isdigit() and 0 < int(raw) <= MAX_ID else None


@bp.route("/diff")
@owner_required
def diff() -> Any:
    """What changed between two versions: elements and form fields."""
    versions = sorted(ws.list_versions(g.db), key=lambda v: (v.process_id, -v.number))
    a_id, b_id = _int_arg("a"), _int_arg("b")
    result = None
    error = None
    if a_id is not None and b_id is not None:
        try:
            result = ws.diff(g.db, a_id, b_id).as_dict()
        except LotsenError as exc:
            if exc.status == 404:
                raise
            g.rollback_only = True
            error = _engine_message(exc)
    elif request.args.get("a") or request.args.get("b"):
        error = _("Choose two versions.")
    status = 200 if error is None else 422
    return render_template(
        "workspace/diff.html", versions=versions, a_id=a_id, b_id=b_id, result=result, error=error
    ), status


@bp.route("/versions/<int:version_id>/migration")
@owner_required
def migration(version_id: int) -> Any:
    """Dry run: which running instances could move to this version, and why others cannot."""
    v = _version_or_404(version_id)
    try:
        plan = ws.migration_plan(g.db, version_id)
        error = None
    except LotsenError as exc:
        if exc.status == 404:
            raise
        g.rollback_only = True
        plan, error = None, _engine_message(exc)
    return render_template("workspace/migration.html", v=v, plan=plan, error=error)


@bp.route("/versions/<int:version_id>/migrate", methods=["POST"])
@owner_required
def migrate(version_id: int) -> Any:
    """Move the instances the dry run allows (explicit, audited, in the engine)."""
    _version_or_404(version_id)
    if request.form.get("confirm") != "yes":
        flash(_("Tick the box to confirm that the instances should move."), "error")
        return redirect(url_for("workspace.migration", version_id=version_id), code=303)
    try:
        report = ws.migrate(g.db, g.actor, version_id, apply=True)
    except LotsenError as exc:
        if exc.status == 404:
            raise
        g.rollback_only = True
        flash(_engine_message(exc), "error")
    else:
        moved = len(getattr(report, "moved", None) or [])
        flash(_("Cases moved to this version: %(count)s.", count=moved), "success")
    return redirect(url_for("workspace.migration", version_id=version_id), code=303)


@bp.route("/versions/<int:version_id>/scenarios", methods=["POST"])
@owner_required
def scenarios(version_id: int) -> Any:
    """Run the procedure's scenario files against this version and show which pass."""
    v = _version_or_404(version_id)
    try:
        results = list(ws.run_scenarios(g.db, version_id))
        error = None
    except LotsenError as exc:
        if exc.status == 404:
            raise
        results, error = [], _engine_message(exc)
    # running the scenarios must leave no trace in the database
    g.rollback_only = True
    return render_template("workspace/scenarios.html", v=v, results=results, error=error)


# --- read-only diagrams --------------------------------------------------------------------------


@bp.route("/versions/<int:version_id>/diagram")
@owner_required
def diagram(version_id: int) -> Any:
    """A read-only diagram of any version, with its steps as a list."""
    v = _version_or_404(version_id)
    return render_template("workspace/diagram.html", v=v, steps=_version_steps(v, set(), set()))


@dataclass(frozen=True)
class Step:
    """A user task of a version, and where a case stands with it."""

    bpmn_id: str
    name: str
    lane: str | None
    state: str  # "done", "current" or "todo"


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _version_steps(v: ProcessVersion, done: set[str], current: set[str]) -> list[Step]:
    try:
        tasks = model_for(v).tasks
    except Exception:  # a draft the checker refused has no model; no list then
        return []
    steps = [
        Step(
            bpmn_id=t.bpmn_id,
            name=t.name or t.bpmn_id,
            lane=t.lane,
            state="current" if t.bpmn_id in current else "done" if t.bpmn_id in done else "todo",
        )
        for t in tasks.values()
        if t.is_user_task
    ]
    return sorted(steps, key=lambda s: _natural(s.name))


def _case_progress(case_id: int) -> tuple[ProcessVersion | None, set[str], set[str]]:
    """The case's own process version, and its done and current user tasks (BPMN ids)."""
    instance = (
        g.db.execute(
            select(ProcessInstance)
            .where(ProcessInstance.case_id == case_id)
            .order_by(ProcessInstance.id)
        )
        .scalars()
        .first()
    )
    if instance is None:
        return None, set(), set()
    version = g.db.get(ProcessVersion, instance.version_id)
    rows = g.db.execute(
        select(OpenTask.bpmn_id, OpenTask.status).where(OpenTask.case_id == case_id)
    ).all()
    done = {r.bpmn_id for r in rows if r.status == "done"}
    current = {r.bpmn_id for r in rows if r.status == "open"}
    return version, done, current


@bp.app_template_global("workspace_case_steps")
def case_steps(case: Any) -> list[Step]:
    """For the case page (which has checked access): the steps of the case's own version."""
    version, done, current = _case_progress(int(case.id))
    return _version_steps(version, done, current) if version is not None else []


def step_label(state: str) -> str:
    labels = {"done": _("Done"), "current": _("Current"), "todo": _("Not yet")}
    return str(labels.get(state, state))


@bp.route("/cases/<int:case_id>/diagram.json")
@login_required
def case_diagram(case_id: int) -> Any:
    """The case's own version with its done and current tasks, for whoever may read the case."""
    case = access.access_case(g.db, g.actor, case_id, purpose="diagram")
    version, done, current = _case_progress(case.id)
    if version is None:
        abort(404)
    return jsonify(
        {
            "case_id": case.id,
            "process_id": version.process_id,
            "version": version.number,
            "bpmn": version.bpmn_xml,
            "done": sorted(done - current),
            "current": sorted(current),
        }
    )


bp.add_app_template_global(status_label, "ws_status_label")
bp.add_app_template_global(problem_text, "ws_problem_text")
bp.add_app_template_global(step_label, "ws_step_label")
