"""Every setting Lotsen reads, from the environment, with safe defaults.

Settings live in one frozen object so that tests can build their own and nothing reads
``os.environ`` behind the caller's back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"  # noqa: S105 - refused outside demo/dev


class ConfigError(RuntimeError):
    """The settings are unsafe or incomplete; the app must not start."""


@dataclass(frozen=True)
class Settings:
    """Lotsen's settings. Build with :func:`load_settings`."""

    database_url: str
    secret_key: str
    data_key: bytes
    #: Older data keys, kept only to read rows not yet re-encrypted by ``lotsen rotate-keys``.
    old_data_keys: tuple[bytes, ...] = ()
    demo: bool = False
    env: str = "production"
    bpmn_dir: Path = PROJECT_ROOT / "bpmn"
    instance_dir: Path = PROJECT_ROOT / "instance"
    #: The erasure ledger (engine/retention.py): outside the database, backed up on its own.
    erasure_ledger: Path | None = None
    municipality: str = "Huddinge kommun"
    authority: str = "Socialnämnden"
    token_issuer: str = "lotsen"  # noqa: S105 - a name, not a secret
    token_audience: str = "lotsen-api"  # noqa: S105 - a name, not a secret
    token_default_ttl: int = 3600
    session_idle_minutes: int = 30
    session_absolute_hours: int = 10
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_dev(self) -> bool:
        """True in demo, development and test mode, where a development key is tolerated."""
        return self.demo or self.env in {"development", "test"}

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with some settings changed (used by tests)."""
        return replace(self, **changes)


def _read_secret(env: Mapping[str, str], name: str) -> str | None:
    """Read a secret from ``NAME`` or from the file named by ``NAME_FILE``."""
    if env.get(f"{name}_FILE"):
        return Path(env[f"{name}_FILE"]).read_text(encoding="utf-8").strip()
    value = env.get(name)
    return value.strip() if value else None


def _decode_key(raw: str, name: str) -> bytes:
    """A 32-byte key from its base64url text (padding optional)."""
    import base64
    import binascii

    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{name} is not valid base64url") from exc
    if len(key) != 32:
        raise ConfigError(f"{name} must be 32 bytes, base64url-encoded")
    return key


def _old_data_keys(env: Mapping[str, str]) -> tuple[bytes, ...]:
    """``LOTSEN_DATA_KEY_OLD`` (or ``_FILE``): retired keys, separated by commas or whitespace."""
    raw = _read_secret(env, "LOTSEN_DATA_KEY_OLD") or ""
    parts = [p for p in raw.replace(",", " ").split() if p]
    return tuple(_decode_key(p, "LOTSEN_DATA_KEY_OLD") for p in parts)


def _dev_data_key(secret: str) -> bytes:
    """Derive a stable development data key so demo data stays readable across restarts."""
    import hashlib

    return hashlib.sha256(b"lotsen-dev-data-key:" + secret.encode()).digest()


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from environment variables; refuse unsafe production settings."""
    env = os.environ if env is None else env
    demo = env.get("LOTSEN_DEMO", "") in {"1", "true", "yes"}
    mode = env.get("LOTSEN_ENV", "development" if demo else "production")
    if demo and mode == "production":
        raise ConfigError("LOTSEN_DEMO is refused in production (demo users have known passwords)")
    instance_dir = Path(env.get("LOTSEN_INSTANCE_DIR", str(PROJECT_ROOT / "instance")))
    database_url = env.get("LOTSEN_DATABASE_URL") or f"sqlite:///{instance_dir / 'lotsen.db'}"
    secret = _read_secret(env, "LOTSEN_SECRET_KEY")
    dev = mode in {"development", "test"}
    if not secret:
        if not dev:
            raise ConfigError("LOTSEN_SECRET_KEY is required outside demo/development mode")
        secret = DEV_SECRET_KEY
    if not dev and (secret == DEV_SECRET_KEY or len(secret) < 32):
        raise ConfigError("LOTSEN_SECRET_KEY must be a real secret of at least 32 characters")
    raw_key = _read_secret(env, "LOTSEN_DATA_KEY")
    if raw_key:
        data_key = _decode_key(raw_key, "LOTSEN_DATA_KEY")
    elif dev:
        data_key = _dev_data_key(secret)
    else:
        raise ConfigError("LOTSEN_DATA_KEY is required outside demo/development mode")
    bpmn_dir = Path(env.get("LOTSEN_BPMN_DIR", str(PROJECT_ROOT / "bpmn")))
    return Settings(
        database_url=database_url,
        secret_key=secret,
        data_key=data_key,
        old_data_keys=tuple(k for k in _old_data_keys(env) if k != data_key),
        demo=demo,
        env=mode,
        bpmn_dir=bpmn_dir,
        instance_dir=instance_dir,
        erasure_ledger=Path(env["LOTSEN_ERASURE_LEDGER"])
        if env.get("LOTSEN_ERASURE_LEDGER")
        else None,
        # single sign-on (webapp.oidc reads and checks these)
        extra={k: v for k, v in env.items() if k.startswith("LOTSEN_OIDC_")},
    )
