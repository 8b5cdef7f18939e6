"""A small OpenID Connect provider for the tests (no tests here).

It runs as a real HTTP server on 127.0.0.1 in a thread, so Lotsen fetches the discovery
document and the JWKS and redeems the code at the token endpoint over real HTTP, as it would
against the municipality's provider. The token endpoint checks the client's credentials, the
redirect URI and the PKCE verifier against the challenge the code was issued for. Keys are
generated with ``cryptography`` for each provider.

The browser half of the provider (its login page) is played by the test: it reads the
``state``, ``nonce`` and ``code_challenge`` from Lotsen's redirect, and asks the provider for a
code that will yield the ID token the test chooses (a good one or a forged one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask.testing import FlaskClient
from jose import jwk, jwt

CLIENT_ID = "lotsen-test-client"
CLIENT_SECRET = "test-client-secret-0123456789"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass
class CodeGrant:
    """What a code was issued for, and the ID token it yields."""

    challenge: str
    redirect_uri: str
    id_token: Callable[[], str]
    used: bool = False


@dataclass
class Provider:
    """The test provider: keys, issued codes, the requests it saw."""

    issuer: str = ""
    rsa_key: Any = None
    ec_key: Any = None
    rsa_kid: str = "rsa-1"
    ec_kid: str = "ec-1"
    codes: dict[str, CodeGrant] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    jwks_fetches: int = 0

    # --- keys and tokens --------------------------------------------------------------------------

    def private_pem(self, key: Any) -> str:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    def public_pem(self) -> bytes:
        return self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = jwk.construct(self.public_pem(), "RS256").to_dict()
        ec_pem = self.ec_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        ec_jwk = jwk.construct(ec_pem, "ES256").to_dict()
        return {
            "keys": [
                {**rsa_jwk, "kid": self.rsa_kid, "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": self.ec_kid, "use": "sig", "alg": "ES256"},
            ]
        }

    def claims(self, nonce_value: str, **changes: Any) -> dict[str, Any]:
        """Good claims for the login's nonce (``changes``: replace, or drop with ``...``)."""
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": "sub-handlaggare",
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "nonce": nonce_value,
            "preferred_username": "handlaggare",
            "name": "Hanna Handläggare",
            "amr": ["pwd"],
        }
        base.update(changes)
        return {k: v for k, v in base.items() if v is not ...}

    def sign(self, claims: dict[str, Any], alg: str = "RS256", kid: str | None = None) -> str:
        """A correctly signed token with the provider's own key."""
        key = self.rsa_key if alg == "RS256" else self.ec_key
        kid = kid or (self.rsa_kid if alg == "RS256" else self.ec_kid)
        return str(jwt.encode(claims, self.private_pem(key), algorithm=alg, headers={"kid": kid}))

    def sign_with(self, claims: dict[str, Any], key: Any, kid: str | None = None) -> str:
        """Signed RS256 with another key (an attacker's) under the provider's kid."""
        return str(
            jwt.encode(
                claims,
                self.private_pem(key),
                algorithm="RS256",
                headers={"kid": kid or self.rsa_kid},
            )
        )

    def forge(self, claims: dict[str, Any], header: dict[str, Any], secret: bytes | None) -> str:
        """A hand-made token: any header, HMAC-SHA256 with ``secret`` or no signature."""
        head = b64url(json.dumps(header, separators=(",", ":")).encode())
        body = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{head}.{body}".encode("ascii")
        signature = b"" if secret is None else hmac.new(secret, signing_input, "sha256").digest()
        return f"{head}.{body}.{b64url(signature)}"

    # --- codes -----------------------------------------------------------------------------------

    def issue_code(self, challenge: str, redirect_uri: str, id_token: Callable[[], str]) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = CodeGrant(challenge, redirect_uri, id_token)
        return code


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            return

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path == "/.well-known/openid-configuration":
                self._json(
                    200,
                    {
                        "issuer": provider.issuer,
                        "authorization_endpoint": f"{provider.issuer}/authorize",
                        "token_endpoint": f"{provider.issuer}/token",
                        "jwks_uri": f"{provider.issuer}/jwks",
                        "response_types_supported": ["code"],
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                        "code_challenge_methods_supported": ["S256"],
                    },
                )
            elif path == "/jwks":
                provider.jwks_fetches += 1
                self._json(200, provider.jwks())
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            if urllib.parse.urlsplit(self.path).path != "/token":
                self._json(404, {"error": "not_found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode("ascii")))
            provider.token_requests.append(form)
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode(
                "ascii"
            )
            if self.headers.get("Authorization") != expected:
                self._json(401, {"error": "invalid_client"})
                return
            grant = provider.codes.get(form.get("code", ""))
            if (
                form.get("grant_type") != "authorization_code"
                or grant is None
                or grant.used
                or grant.redirect_uri != form.get("redirect_uri")
                or s256(form.get("code_verifier", "")) != grant.challenge
            ):
                self._json(400, {"error": "invalid_grant"})
                return
            grant.used = True
            self._json(
                200,
                {
                    "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": grant.id_token(),
                },
            )

    return Handler


@contextmanager
def running_provider() -> Iterator[Provider]:
    """A provider serving on a free local port for the duration of the block."""
    provider = Provider(
        rsa_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec_key=ec.generate_private_key(ec.SECP256R1()),
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()


def settings(provider: Provider, **extra: str) -> dict[str, str]:
    """The ``LOTSEN_OIDC_*`` overrides that point Lotsen at ``provider``."""
    return {
        "LOTSEN_OIDC_ISSUER": provider.issuer,
        "LOTSEN_OIDC_CLIENT_ID": CLIENT_ID,
        "LOTSEN_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "LOTSEN_OIDC_REDIRECT_URI": "http://localhost/sso/callback",
        **extra,
    }


@dataclass(frozen=True)
class Started:
    """What Lotsen put into the redirect to the provider."""

    state: str
    nonce: str
    challenge: str
    redirect_uri: str
    params: dict[str, str]


def start_login(client: FlaskClient, path: str = "/sso/login") -> Started:
    response = client.get(path)
    assert response.status_code == 303, (response.status_code, response.get_data(as_text=True))
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(response.headers["Location"]).query))
    return Started(
        params["state"], params["nonce"], params["code_challenge"], params["redirect_uri"], params
    )


def sso_login(
    client: FlaskClient,
    provider: Provider,
    token: Callable[[Started], str] | None = None,
    *,
    challenge: str | None = None,
    state: str | None = None,
    environ: dict[str, str] | None = None,
) -> Any:
    """One round through the provider: start, "log in" there, come back with a code."""
    started = start_login(client)
    make = token or (lambda s: provider.sign(provider.claims(s.nonce)))
    code = provider.issue_code(
        challenge or started.challenge, started.redirect_uri, lambda: make(started)
    )
    query = urllib.parse.urlencode({"code": code, "state": state or started.state})
    return client.get(f"/sso/callback?{query}", environ_base=environ or {})
