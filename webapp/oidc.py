"""OpenID Connect client parts without Flask: settings, provider metadata, the code exchange
and the ID-token check (python-jose, security.md §3.1).

What the check insists on, whatever python-jose's defaults are:

* the header's ``alg`` must be one of :data:`ALLOWED_ALGORITHMS` (RS256, ES256) and the
  decode is pinned to it: ``alg: none`` and HS256 signed with the provider's public key
  (algorithm confusion, CVE-2024-33663) are refused before any key is used;
* the key comes only from the configured issuer's JWKS (``jku``, ``x5u``, ``jwk`` in the
  header are ignored), picked by ``kid`` and key type;
* ``iss`` (exactly the configured issuer), ``aud`` (our client id; ``azp`` when there are
  several audiences), ``exp``, ``iat``, ``sub`` and ``nonce`` are required, with 60 s leeway;
  ``iat`` may not lie in the future nor far in the past; ``at_hash`` is checked when present.

Every refusal is an :class:`OidcError` with a short reason code for the audit log (never the
token itself).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jose import JWTError, jwt

ALLOWED_ALGORITHMS = ("RS256", "ES256")
KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}
LEEWAY_SECONDS = 60
#: An ID token older than this (by ``iat``) is refused even if it has not expired.
MAX_TOKEN_AGE_SECONDS = 600
HTTP_TIMEOUT_SECONDS = 5
MAX_RESPONSE_BYTES = 512 * 1024
METADATA_TTL_SECONDS = 3600
JWKS_TTL_SECONDS = 600
#: A JWKS refresh for an unknown ``kid`` happens at most this often (no fetch storm).
JWKS_REFRESH_SECONDS = 60
#: ``amr`` values (RFC 8176) that mean the provider used more than a password.
MFA_AMR = frozenset(
    {"mfa", "otp", "hwk", "swk", "sc", "fpt", "face", "iris", "retina", "vbm", "sms", "tel"}
)
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class OidcError(Exception):
    """The login through the identity provider failed; ``reason`` is for the audit log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OidcConfig:
    """Single sign-on settings, from ``LOTSEN_OIDC_*`` (see :func:`load_config`)."""

    issuer: str
    client_id: str
    client_secret: str | None = None
    redirect_uri: str | None = None
    scopes: str = "openid profile email"
    username_claim: str = "preferred_username"
    name_claim: str = "name"
    role_claim: str | None = None
    unit_claim: str | None = None
    #: provider value -> Lotsen role id (values not listed are taken as role ids themselves)
    role_map: Mapping[str, str] = field(default_factory=dict)
    provision: bool = False
    algorithms: tuple[str, ...] = ALLOWED_ALGORITHMS
    trusted_hosts: frozenset[str] = frozenset()
    label: str = ""


def _secret(extra: Mapping[str, str], name: str) -> str | None:
    if extra.get(f"{name}_FILE"):
        return Path(extra[f"{name}_FILE"]).read_text(encoding="utf-8").strip() or None
    value = extra.get(name)
    return value.strip() if value else None


def _pairs(raw: str) -> dict[str, str]:
    """``a=caseworker, b=supervisor`` -> {"a": "caseworker", "b": "supervisor"}."""
    result = {}
    for part in raw.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip() and value.strip():
            result[key.strip()] = value.strip()
    return result


def load_config(extra: Mapping[str, str]) -> OidcConfig | None:
    """The settings, or None when single sign-on is not configured. Refuses unsafe ones."""
    issuer = (extra.get("LOTSEN_OIDC_ISSUER") or "").strip().rstrip("/")
    client_id = (extra.get("LOTSEN_OIDC_CLIENT_ID") or "").strip()
    if not issuer or not client_id:
        return None
    check_url(issuer, frozenset())
    algorithms = tuple(
        a.strip()
        for a in (extra.get("LOTSEN_OIDC_ALGORITHMS") or ",".join(ALLOWED_ALGORITHMS)).split(",")
        if a.strip()
    )
    if not algorithms or any(a not in ALLOWED_ALGORITHMS for a in algorithms):
        raise ValueError(f"LOTSEN_OIDC_ALGORITHMS may name only {', '.join(ALLOWED_ALGORITHMS)}")
    hosts = frozenset(
        h.strip().lower() for h in (extra.get("LOTSEN_OIDC_TRUSTED_HOSTS") or "").split(",") if h
    )
    return OidcConfig(
        issuer=issuer,
        client_id=client_id,
        client_secret=_secret(extra, "LOTSEN_OIDC_CLIENT_SECRET"),
        redirect_uri=(extra.get("LOTSEN_OIDC_REDIRECT_URI") or "").strip() or None,
        scopes=(extra.get("LOTSEN_OIDC_SCOPES") or "openid profile email").strip(),
        username_claim=(extra.get("LOTSEN_OIDC_USERNAME_CLAIM") or "preferred_username").strip(),
        name_claim=(extra.get("LOTSEN_OIDC_NAME_CLAIM") or "name").strip(),
        role_claim=(extra.get("LOTSEN_OIDC_ROLE_CLAIM") or "").strip() or None,
        unit_claim=(extra.get("LOTSEN_OIDC_UNIT_CLAIM") or "").strip() or None,
        role_map=_pairs(extra.get("LOTSEN_OIDC_ROLE_MAP") or ""),
        provision=(extra.get("LOTSEN_OIDC_PROVISION") or "").lower() in {"1", "true", "yes"},
        algorithms=algorithms,
        trusted_hosts=hosts,
        label=(extra.get("LOTSEN_OIDC_LABEL") or "").strip(),
    )


def check_url(url: str, trusted_hosts: frozenset[str], issuer: str | None = None) -> None:
    """HTTPS (plain HTTP only on this machine), and on the issuer's host or a trusted one."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password:
        raise OidcError("bad_provider_url")
    if parts.scheme != "https" and not (parts.scheme == "http" and host in LOCAL_HOSTS):
        raise OidcError("provider_url_not_https")
    if issuer is not None:
        issuer_parts = urllib.parse.urlsplit(issuer)
        same = (parts.scheme, parts.netloc.lower()) == (
            issuer_parts.scheme,
            issuer_parts.netloc.lower(),
        )
        if not same and host not in trusted_hosts:
            raise OidcError("provider_url_foreign_host")


# --- PKCE, state and nonce ----------------------------------------------------------------------


def new_secret() -> str:
    """A random value for ``state``, ``nonce`` or the PKCE verifier (43+ characters)."""
    return secrets.token_urlsafe(48)


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def same(a: object, b: object) -> bool:
    """Constant-time equality of two strings (False for anything else)."""
    return (
        isinstance(a, str)
        and isinstance(b, str)
        and hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
    )


# --- HTTP ----------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The provider's endpoints answer directly; a redirect could lead anywhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _request(
    url: str, *, data: bytes | None = None, headers: Mapping[str, str] | None = None
) -> urllib.request.Request:
    """A request to an http(s) URL only (the URLs were checked by :func:`check_url`)."""
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise OidcError("provider_url_not_https")
    return urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=data,
        headers={"Accept": "application/json", **(headers or {})},
        method="POST" if data is not None else "GET",
    )


def _http_json(request: urllib.request.Request, reason: str) -> dict[str, Any]:
    try:
        with _opener.open(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise OidcError(f"{reason}_http_{exc.code}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise OidcError(f"{reason}_unreachable") from exc
    if len(body) > MAX_RESPONSE_BYTES:
        raise OidcError(f"{reason}_too_large")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise OidcError(f"{reason}_not_json") from exc
    if not isinstance(data, dict):
        raise OidcError(f"{reason}_not_json")
    return data


# --- the provider --------------------------------------------------------------------------------


class Provider:
    """One identity provider: its metadata and keys (cached), the code exchange, the check."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: dict[str, Any] | None = None
        self._jwks_at = 0.0

    # metadata and keys

    def metadata(self) -> dict[str, Any]:
        """The discovery document, checked: same issuer, endpoints on trusted hosts."""
        with self._lock:
            if self._metadata is not None and time.monotonic() - self._metadata_at < (
                METADATA_TTL_SECONDS
            ):
                return self._metadata
        url = f"{self.config.issuer}/.well-known/openid-configuration"
        data = _http_json(_request(url), "discovery")
        if data.get("issuer") != self.config.issuer:
            raise OidcError("discovery_issuer_mismatch")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = data.get(name)
            if not isinstance(value, str):
                raise OidcError(f"discovery_missing_{name}")
            check_url(value, self.config.trusted_hosts, self.config.issuer)
        with self._lock:
            self._metadata, self._metadata_at = data, time.monotonic()
        return data

    def jwks(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        """The provider's signing keys (refreshed for an unknown ``kid``, but not too often)."""
        now = time.monotonic()
        with self._lock:
            cached = self._jwks
            fresh = cached is not None and now - self._jwks_at < JWKS_TTL_SECONDS
            may_refresh = now - self._jwks_at >= JWKS_REFRESH_SECONDS
        if cached is not None and fresh and not (refresh and may_refresh):
            return list(cached.get("keys", []))
        url = str(self.metadata()["jwks_uri"])
        data = _http_json(_request(url), "jwks")
        keys = data.get("keys")
        if not isinstance(keys, list):
            raise OidcError("jwks_without_keys")
        with self._lock:
            self._jwks, self._jwks_at = data, time.monotonic()
        return [k for k in keys if isinstance(k, dict)]

    def _key_for(self, kid: Any, alg: str) -> dict[str, Any]:
        for refresh in (False, True):
            candidates = [
                k
                for k in self.jwks(refresh=refresh)
                if k.get("kty") == KEY_TYPES[alg]
                and k.get("use", "sig") == "sig"
                and k.get("alg", alg) == alg
                and (kid is None or k.get("kid") == kid)
            ]
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1:
                raise OidcError("ambiguous_key")
        raise OidcError("unknown_key")

    # the login

    def authorization_url(
        self,
        *,
        state: str,
        nonce: str,
        verifier: str,
        redirect_uri: str,
        prompt: str | None = None,
        max_age: int | None = None,
    ) -> str:
        """Where to send the browser: the provider's login with our PKCE challenge."""
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.config.scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if prompt:
            params["prompt"] = prompt
        if max_age is not None:
            params["max_age"] = str(max_age)
        endpoint = str(self.metadata()["authorization_endpoint"])
        sep = "&" if "?" in endpoint else "?"
        return endpoint + sep + urllib.parse.urlencode(params)

    def exchange(self, *, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """Trade the authorization code (and PKCE verifier) for tokens at the token endpoint."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": self.config.client_id,
        }
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.config.client_secret:
            pair = f"{urllib.parse.quote(self.config.client_id, safe='')}:" + urllib.parse.quote(
                self.config.client_secret, safe=""
            )
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        request = _request(
            str(self.metadata()["token_endpoint"]),
            data=urllib.parse.urlencode(form).encode("ascii"),
            headers=headers,
        )
        data = _http_json(request, "token_endpoint")
        if not isinstance(data.get("id_token"), str):
            raise OidcError("token_response_without_id_token")
        return data

    def verify_id_token(
        self, token: str, *, nonce: str, access_token: str | None = None, now: float | None = None
    ) -> dict[str, Any]:
        """The checked claims of an ID token (see the module docstring); OidcError otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as exc:
            raise OidcError("malformed_token") from exc
        alg = header.get("alg")
        if alg not in self.config.algorithms:
            raise OidcError("algorithm_not_allowed")
        if header.get("crit"):
            raise OidcError("critical_header")
        key = self._key_for(header.get("kid"), str(alg))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(alg)],
                audience=self.config.client_id,
                issuer=self.config.issuer,
                access_token=access_token,
                options={
                    "verify_signature": True,
                    "verify_aud": True,
                    "verify_iss": True,
                    "verify_exp": True,
                    "verify_iat": True,
                    "verify_nbf": True,
                    "verify_at_hash": access_token is not None,
                    "require_exp": True,
                    "require_iat": True,
                    "require_aud": True,
                    "require_iss": True,
                    "require_sub": True,
                    "leeway": LEEWAY_SECONDS,
                },
            )
        except JWTError as exc:
            raise OidcError(_jose_reason(exc)) from exc
        _check_claims(claims, self.config, nonce, time.time() if now is None else now)
        return claims


def _jose_reason(exc: JWTError) -> str:
    text = str(exc).lower()
    missing = re.search(r'missing (?:the|required key) "(\w+)"', text)
    if missing:
        return f"missing_{missing.group(1)[:20]}"
    for word, reason in (
        ("expired", "token_expired"),
        ("audience", "wrong_audience"),
        ("issuer", "wrong_issuer"),
        ("signature", "bad_signature"),
        ("exp", "missing_exp"),
        ("at_hash", "bad_at_hash"),
    ):
        if word in text:
            return reason
    return "invalid_token"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_claims(claims: dict[str, Any], config: OidcConfig, nonce: str, now: float) -> None:
    """What python-jose leaves to the caller: types, freshness, nonce, ``azp``."""
    for name in ("exp", "iat"):
        if not _number(claims.get(name)):
            raise OidcError(f"missing_{name}")
    if claims["exp"] + LEEWAY_SECONDS < now:
        raise OidcError("token_expired")
    if claims["iat"] > now + LEEWAY_SECONDS or claims["iat"] < now - MAX_TOKEN_AGE_SECONDS:
        raise OidcError("token_too_old_or_from_the_future")
    if claims.get("iss") != config.issuer:
        raise OidcError("wrong_issuer")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if config.client_id not in audiences:
        raise OidcError("wrong_audience")
    if len(audiences) > 1 and claims.get("azp") != config.client_id:
        raise OidcError("wrong_authorized_party")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise OidcError("missing_sub")
    if not same(claims.get("nonce"), nonce):
        raise OidcError("wrong_nonce")


def used_mfa(claims: Mapping[str, Any]) -> bool:
    """True when the provider says it used a second factor (``amr``, RFC 8176)."""
    amr = claims.get("amr")
    values = amr if isinstance(amr, list) else []
    return any(isinstance(v, str) and v.lower() in MFA_AMR for v in values)


def claim_values(claims: Mapping[str, Any], name: str | None) -> list[str]:
    """A claim as a list of strings (a single string becomes one item; others are dropped)."""
    if not name:
        return []
    value = claims.get(name)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def map_roles(
    config: OidcConfig,
    claims: Mapping[str, Any],
    known_roles: Mapping[str, bool],
    unit_ids: Mapping[str, int],
) -> list[tuple[str, int | None]] | None:
    """(role, unit id) pairs from the configured claims; None when no role claim is set.

    ``known_roles``: role id -> unit scoped. A unit-scoped role needs a known unit from the
    unit claim (else it is dropped: fail closed); unknown roles and units are dropped.
    """
    if not config.role_claim:
        return None
    units = [unit_ids[u] for u in claim_values(claims, config.unit_claim) if u in unit_ids]
    pairs: set[tuple[str, int | None]] = set()
    for value in claim_values(claims, config.role_claim):
        role = config.role_map.get(value, value)
        if role not in known_roles:
            continue
        if known_roles[role]:
            pairs.update((role, unit) for unit in units)
        else:
            pairs.add((role, None))
    return sorted(pairs, key=lambda p: (p[0], p[1] or 0))


_providers: dict[tuple[str, str], Provider] = {}
_providers_lock = threading.Lock()


def provider_for(config: OidcConfig) -> Provider:
    """One cached provider per (issuer, client id) in this process."""
    with _providers_lock:
        key = (config.issuer, config.client_id)
        provider = _providers.get(key)
        if provider is None or provider.config != config:
            provider = Provider(config)
            _providers[key] = provider
        return provider
