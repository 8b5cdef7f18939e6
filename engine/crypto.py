"""Encryption at rest for personal data (AES-GCM) and a keyed blind index for lookups.

Columns typed :class:`EncryptedText` / :class:`EncryptedJSON` are encrypted before they
reach the database, so a copied database file or backup shows no personal data. The key is
configured once at start-up (:func:`configure`); each ciphertext names its key id so keys
can be rotated without re-encrypting everything at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator


class CryptoNotConfigured(RuntimeError):
    """Raised when personal data is read or written before a key is configured."""


class _KeyRing:
    """The active data key plus older keys still able to decrypt."""

    def __init__(self) -> None:
        self.active_id: str | None = None
        self.keys: dict[str, bytes] = {}

    def configure(self, key: bytes, old_keys: dict[str, bytes] | None = None) -> None:
        if len(key) != 32:
            raise ValueError("the data key must be 32 bytes")
        self.active_id = key_id(key)
        self.keys = {self.active_id: key, **(old_keys or {})}

    def active(self) -> tuple[str, bytes]:
        if self.active_id is None:
            raise CryptoNotConfigured("no data key configured")
        return self.active_id, self.keys[self.active_id]


_ring = _KeyRing()


def key_id(key: bytes) -> str:
    """A short, non-secret identifier of a key (so a ciphertext says which key made it)."""
    return hashlib.sha256(b"lotsen-key-id:" + key).hexdigest()[:8]


def configure(key: bytes, old_keys: list[bytes] | None = None) -> None:
    """Set the data key (and keys kept only for decrypting older rows)."""
    _ring.configure(key, {key_id(k): k for k in old_keys or []})


def encrypt(plaintext: str, *, context: bytes = b"lotsen") -> str:
    """Encrypt text; the result is ``<key id>.<base64(nonce + ciphertext)>``."""
    kid, key = _ring.active()
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), context)
    return f"{kid}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"


def decrypt(token: str, *, context: bytes = b"lotsen") -> str:
    """Decrypt a value made by :func:`encrypt` with whichever known key made it."""
    kid, _, body = token.partition(".")
    key = _ring.keys.get(kid)
    if key is None:
        raise CryptoNotConfigured(f"no key with id {kid} is configured")
    raw = base64.urlsafe_b64decode(body.encode("ascii"))
    return AESGCM(key).decrypt(raw[:12], raw[12:], context).decode("utf-8")


def needs_rotation(token: str) -> bool:
    """True when a ciphertext was made with a key other than the active one."""
    return token.partition(".")[0] != _ring.active()[0]


def key_id_of(token: str) -> str:
    """The id of the key that made a ciphertext (the text before the first dot)."""
    return token.partition(".")[0]


def active_key_id() -> str:
    """The id of the key new ciphertexts are made with."""
    return _ring.active()[0]


def known_key_ids() -> list[str]:
    """Every configured key id, the active one first."""
    active = _ring.active()[0]
    return [active, *(k for k in _ring.keys if k != active)]


def reencrypt(token: str, *, context: bytes = b"lotsen") -> str:
    """The same plaintext sealed again with the active key (for key rotation)."""
    return encrypt(decrypt(token, context=context), context=context)


def _blind_index_with(key: bytes, value: str, purpose: str) -> str:
    sub = hmac.new(key, b"blind-index:" + purpose.encode(), hashlib.sha256).digest()
    return hmac.new(sub, value.encode("utf-8"), hashlib.sha256).hexdigest()


def blind_index(value: str, *, purpose: str) -> str:
    """A keyed hash for exact-match lookup (personnummer) without storing the value."""
    _, key = _ring.active()
    return _blind_index_with(key, value, purpose)


def blind_index_candidates(value: str, *, purpose: str) -> list[str]:
    """The blind index of ``value`` under every configured key, the active key's first.

    While ``lotsen rotate-keys`` runs, rows not yet rotated still carry the index of an
    old key; a lookup that matches any of these finds them too.
    """
    return [_blind_index_with(_ring.keys[k], value, purpose) for k in known_key_ids()]


class EncryptedText(TypeDecorator[str]):
    """A text column stored encrypted."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else encrypt(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else decrypt(value)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document stored encrypted (drafts, workflow state with task data)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return encrypt(json.dumps(value, separators=(",", ":"), ensure_ascii=False))

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(decrypt(value))
