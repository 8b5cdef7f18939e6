"""All ORM models, imported here so that metadata is complete for Alembic and tests."""

# Modules of later issues: imported so their tables are on the metadata; import their classes
# from the module itself (``from engine.models.intake import ...``).
from engine.models import intake, notifications, protection, retention, workspace  # noqa: F401
from engine.models.audit import AuditEntry, AuditHead
from engine.models.auth_state import LoginThrottle, RevokedToken
from engine.models.cases import Case, CaseMember, JournalNote, Subject
from engine.models.decisions import Decision
from engine.models.documents import Document
from engine.models.instances import Draft, OpenTask, ProcessInstance
from engine.models.links import CaseLink, Consent
from engine.models.org import RoleAssignment, Unit, User
from engine.models.processes import ProcessVersion
from engine.models.reviews import LogReview, LogReviewItem
from engine.models.sessions import WebSession

__all__ = [
    "AuditEntry",
    "AuditHead",
    "Case",
    "CaseLink",
    "CaseMember",
    "Consent",
    "Decision",
    "Document",
    "Draft",
    "JournalNote",
    "LogReview",
    "LogReviewItem",
    "LoginThrottle",
    "OpenTask",
    "ProcessInstance",
    "ProcessVersion",
    "RevokedToken",
    "RoleAssignment",
    "Subject",
    "Unit",
    "User",
    "WebSession",
]
