"""webapp.oidc without Flask: settings, PKCE, role mapping, provider metadata and keys, and the
ID-token check against a real local provider (``oidc_kit``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any, ClassVar

import pytest

from tests.webapp.oidc_kit import CLIENT_ID, Provider, running_provider, settings
from webapp import oidc


@pytest.fixture
def idp() -> Iterator[Provider]:
    with running_provider() as provider:
        yield provider


def _provider(idp: Provider, **extra: str) -> oidc.Provider:
    config = oidc.load_config(settings(idp, **extra))
    assert config is not None
    return oidc.Provider(config)


def test_settings() -> None:
    assert oidc.load_config({}) is None
    assert oidc.load_config({"LOTSEN_OIDC_ISSUER": "https://idp.example"}) is None
    config = oidc.load_config(
        {
            "LOTSEN_OIDC_ISSUER": "https://idp.huddinge.example/realms/staff/",
            "LOTSEN_OIDC_CLIENT_ID": "lotsen",
            "LOTSEN_OIDC_ROLE_MAP": "a=caseworker, b = supervisor,broken",
            "LOTSEN_OIDC_ALGORITHMS": "ES256",
        }
    )
    assert config is not None
    assert config.issuer == "https://idp.huddinge.example/realms/staff"
    assert config.role_map == {"a": "caseworker", "b": "supervisor"}
    assert config.algorithms == ("ES256",) and not config.provision
    for bad in ("HS256", "none", "RS256,PS256", ""):
        if bad == "":
            continue
        with pytest.raises(ValueError):
            oidc.load_config(
                {
                    "LOTSEN_OIDC_ISSUER": "https://idp.example",
                    "LOTSEN_OIDC_CLIENT_ID": "x",
                    "LOTSEN_OIDC_ALGORITHMS": bad,
                }
            )
    with pytest.raises(oidc.OidcError):  # plain HTTP only on this machine
        oidc.load_config({"LOTSEN_OIDC_ISSUER": "http://idp.example", "LOTSEN_OIDC_CLIENT_ID": "x"})


def test_urls_must_be_https_on_the_issuers_host() -> None:
    issuer = "https://idp.example/realm"
    oidc.check_url("https://idp.example/keys", frozenset(), issuer)
    oidc.check_url("https://keys.example/jwks", frozenset({"keys.example"}), issuer)
    for url in (
        "http://idp.example/keys",
        "https://evil.example/keys",
        "https://idp.example:8443/keys",
        "https://user:pw@idp.example/keys",
        "file:///etc/passwd",
        "ftp://idp.example/keys",
    ):
        with pytest.raises(oidc.OidcError):
            oidc.check_url(url, frozenset(), issuer)


def test_pkce_challenge_is_s256() -> None:
    import base64
    import hashlib

    verifier = oidc.new_secret()
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    challenge = oidc.pkce_challenge(verifier)
    assert challenge == expected.decode().rstrip("=") and len(challenge) == 43
    secrets = {oidc.new_secret() for _ in range(50)}
    assert len(secrets) == 50 and all(43 <= len(s) <= 128 for s in secrets)


def test_role_mapping_fails_closed() -> None:
    config = oidc.OidcConfig(
        issuer="https://idp.example",
        client_id="x",
        role_claim="groups",
        unit_claim="units",
        role_map={"sg-socsek": "caseworker", "sg-samordnare": "coordinator"},
    )
    known = {"caseworker": True, "coordinator": False, "admin": False}
    units = {"vuxenenheten": 1, "barn_och_unga": 2}
    claims = {"groups": ["sg-socsek", "sg-samordnare", "unknown"], "units": ["barn_och_unga", "x"]}
    assert oidc.map_roles(config, claims, known, units) == [
        ("caseworker", 2),
        ("coordinator", None),
    ]
    # a unit-scoped role without a known unit is dropped
    assert oidc.map_roles(config, {"groups": "sg-socsek"}, known, units) == []
    # a claim of the wrong type gives nothing
    assert oidc.map_roles(config, {"groups": {"admin": True}}, known, units) == []
    no_claim = oidc.OidcConfig(issuer="https://idp.example", client_id="x")
    assert oidc.map_roles(no_claim, claims, known, units) is None


def test_mfa_is_read_from_amr() -> None:
    assert oidc.used_mfa({"amr": ["pwd", "otp"]})
    assert oidc.used_mfa({"amr": ["hwk"]})
    assert not oidc.used_mfa({"amr": ["pwd"]})
    assert not oidc.used_mfa({"amr": "otp"})  # must be a list (RFC 8176)
    assert not oidc.used_mfa({"acr": "mfa"})


def test_valid_tokens_and_the_checks_python_jose_leaves_to_us(idp: Provider) -> None:
    provider = _provider(idp)
    good = provider.verify_id_token(idp.sign(idp.claims("n-1")), nonce="n-1")
    assert good["sub"] == "sub-handlaggare"
    es = provider.verify_id_token(idp.sign(idp.claims("n-2"), alg="ES256"), nonce="n-2")
    assert es["aud"] == CLIENT_ID
    now = int(time.time())
    refused = {
        "no exp": idp.claims("n", exp=...),
        "string exp": idp.claims("n", exp=str(now + 300)),
        "from the future": idp.claims("n", iat=now + 600, exp=now + 900),
        "no sub": idp.claims("n", sub=...),
        "two audiences, no azp": idp.claims("n", aud=[CLIENT_ID, "other"]),
    }
    for name, claims in refused.items():
        with pytest.raises(oidc.OidcError):
            provider.verify_id_token(idp.sign(claims), nonce="n")
            pytest.fail(name)
    # two audiences with our client as the authorised party are fine
    both = idp.claims("n", aud=[CLIENT_ID, "other"], azp=CLIENT_ID)
    assert provider.verify_id_token(idp.sign(both), nonce="n")["azp"] == CLIENT_ID
    # an ES256 signature presented as RS256 (the key types do not match)
    forged = idp.sign(idp.claims("n"), alg="ES256", kid=idp.ec_kid)
    head, body, sig = forged.split(".")
    header = json.loads(oidc.base64.urlsafe_b64decode(head + "=="))
    header["alg"] = "RS256"
    relabelled = (
        oidc.base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
        + f".{body}.{sig}"
    )
    with pytest.raises(oidc.OidcError, match="unknown_key"):
        provider.verify_id_token(relabelled, nonce="n")
    # a header that points at the attacker's keys is ignored: the key still comes from the JWKS
    pointed = idp.forge(idp.claims("n"), {"alg": "RS256", "jku": "https://evil.example/jwks"}, b"x")
    with pytest.raises(oidc.OidcError):
        provider.verify_id_token(pointed, nonce="n")


def test_allowed_algorithms_can_be_narrowed(idp: Provider) -> None:
    provider = _provider(idp, LOTSEN_OIDC_ALGORITHMS="RS256")
    with pytest.raises(oidc.OidcError, match="algorithm_not_allowed"):
        provider.verify_id_token(idp.sign(idp.claims("n"), alg="ES256"), nonce="n")


def test_keys_are_cached_and_refetched_for_a_new_kid(idp: Provider) -> None:
    provider = _provider(idp)
    for n in range(3):
        provider.verify_id_token(idp.sign(idp.claims(f"n{n}")), nonce=f"n{n}")
    assert idp.jwks_fetches == 1
    # the provider rotates its key: the unknown kid triggers one refresh
    from cryptography.hazmat.primitives.asymmetric import rsa

    idp.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    idp.rsa_kid = "rsa-2"
    provider._jwks_at -= oidc.JWKS_REFRESH_SECONDS  # the last fetch was a minute ago
    provider.verify_id_token(idp.sign(idp.claims("r")), nonce="r")
    assert idp.jwks_fetches == 2
    # a flood of unknown kids does not become a flood of fetches
    for n in range(5):
        with pytest.raises(oidc.OidcError, match="unknown_key"):
            provider.verify_id_token(idp.sign(idp.claims("x"), kid=f"nope-{n}"), nonce="x")
    assert idp.jwks_fetches == 2


class _Liar(BaseHTTPRequestHandler):
    """A provider whose discovery document names another issuer or sends us elsewhere."""

    document: ClassVar[dict[str, Any]] = {}
    redirect: ClassVar[bool] = False

    def log_message(self, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        if self.redirect:
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        data = json.dumps(self.document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)


def _liar(document: dict[str, Any], redirect: bool = False) -> tuple[ThreadingHTTPServer, str]:
    handler = type("Handler", (_Liar,), {"document": document, "redirect": redirect})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize(
    "case",
    ["wrong issuer", "foreign jwks", "redirect", "missing endpoint"],
)
def test_untrustworthy_discovery_is_refused(case: str) -> None:
    server, base = _liar({}, redirect=case == "redirect")
    documents = {
        "wrong issuer": {
            "issuer": "https://evil.example",
            "authorization_endpoint": f"{base}/a",
            "token_endpoint": f"{base}/t",
            "jwks_uri": f"{base}/k",
        },
        "foreign jwks": {
            "issuer": base,
            "authorization_endpoint": f"{base}/a",
            "token_endpoint": f"{base}/t",
            "jwks_uri": "https://evil.example/jwks",
        },
        "missing endpoint": {"issuer": base, "authorization_endpoint": f"{base}/a"},
        "redirect": {},
    }
    server.RequestHandlerClass.document = documents[case]  # type: ignore[attr-defined]
    try:
        config = oidc.load_config({"LOTSEN_OIDC_ISSUER": base, "LOTSEN_OIDC_CLIENT_ID": "x"})
        assert config is not None
        with pytest.raises(oidc.OidcError):
            oidc.Provider(config).metadata()
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_provider_is_an_oidc_error() -> None:
    server, base = _liar({})
    server.shutdown()
    server.server_close()
    config = oidc.load_config({"LOTSEN_OIDC_ISSUER": base, "LOTSEN_OIDC_CLIENT_ID": "x"})
    assert config is not None
    with pytest.raises(oidc.OidcError, match="unreachable"):
        oidc.Provider(config).metadata()
