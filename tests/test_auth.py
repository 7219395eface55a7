"""fluxlit.auth: JWT bearer tokens, scope and role checks, and trusted forward-auth headers, through the gateway."""

# Annotations are evaluated eagerly (no __future__ import) so `Annotated[..., Depends(auth)]` keeps the object.
import base64
import json
import time
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends

from fluxlit import FluxLit, FluxLitTestClient
from fluxlit.errors import ConfigError
from fluxlit.testing import TestClient

jwt = pytest.importorskip("jwt", reason="fluxlit.auth needs the 'auth' extra (PyJWT[crypto])")
rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")

import fluxlit.auth  # noqa: E402
from fluxlit.auth import JWTBearer, Principal, RequireRoles, RequireScopes, TrustedHeaderAuth  # noqa: E402
from fluxlit.auth.forward import socket_peer  # noqa: E402

SECRET = "s3cret-for-tests-only-0123456789abcdefghij"  # 42 bytes: long enough for HS256
ISSUER = "https://id.example.test/"
AUDIENCE = "fluxlit-api"


def pem_pair() -> tuple[Any, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[Any, bytes]:
    return pem_pair()


@pytest.fixture(scope="module")
def other_rsa_keys() -> tuple[Any, bytes]:
    return pem_pair()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs_token(secret: str = SECRET, **overrides: Any) -> str:
    return str(jwt.encode(claims(**overrides), secret, algorithm="HS256"))


def build_app(auth: Any) -> FluxLit:
    app = FluxLit()

    @app.api.get("/me")
    async def me(user: Annotated[Principal, Depends(auth)]) -> dict[str, Any]:
        return {"sub": user.subject, "scopes": sorted(user.scopes), "roles": sorted(user.roles), "via": user.source}

    @app.api.get("/claims")
    async def claims_of(user: Annotated[Principal, Depends(auth)]) -> dict[str, Any]:
        return dict(user.claims)

    @app.api.get("/items", dependencies=[Depends(RequireScopes(auth, "items:read"))])
    async def items() -> list[int]:
        return [1, 2]

    @app.api.delete("/items", dependencies=[Depends(RequireScopes(auth, "items:read", "items:write"))])
    async def delete_items() -> dict[str, bool]:
        return {"deleted": True}

    @app.api.get("/admin", dependencies=[Depends(RequireRoles(auth, "admin", "ops"))])
    async def admin() -> dict[str, bool]:
        return {"admin": True}

    @app.api.get("/audit", dependencies=[Depends(RequireRoles(auth, "admin", "auditor", require_all=True))])
    async def audit() -> dict[str, bool]:
        return {"audit": True}

    return app


@pytest.fixture
def hs_client() -> Iterator[FluxLitTestClient]:
    client = FluxLitTestClient(build_app(JWTBearer(SECRET, issuer=ISSUER, audience=AUDIENCE)))
    yield client
    client.api.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(response: Any) -> str:
    return str(response.headers.get("www-authenticate", ""))


def test_an_unknown_name_on_the_package_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"module 'fluxlit\.auth' has no attribute 'JWTBearr'"):
        _ = fluxlit.auth.JWTBearr


# --- JWT bearer: who gets in ---


def test_valid_hs256_token_yields_its_subject(hs_client: FluxLitTestClient) -> None:
    response = hs_client.api_get("/me", headers=bearer(hs_token()))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "scopes": [], "roles": [], "via": "jwt"}


def test_missing_token_is_401_with_a_bare_bearer_challenge(hs_client: FluxLitTestClient) -> None:
    response = hs_client.api_get("/me")
    assert response.status_code == 401
    assert challenge(response) == "Bearer"


def test_basic_credentials_are_not_a_bearer_token(hs_client: FluxLitTestClient) -> None:
    response = hs_client.api_get("/me", headers={"Authorization": "Basic " + base64.b64encode(b"a:b").decode()})
    assert response.status_code == 401
    assert challenge(response).startswith("Bearer")


OTHER_SECRET = "another-secret-that-is-long-enough-0123456789"
# Tokens are minted when each test runs (relative to now), never at collection time.
INVALID = {
    "garbage": (lambda: "not-a-jwt", "not a well-formed JWT"),
    "wrong-secret": (lambda: hs_token(secret=OTHER_SECRET), "signature does not verify"),
    "expired": (lambda: hs_token(exp=int(time.time()) - 60), "expired"),
    "not-before": (lambda: hs_token(nbf=int(time.time()) + 600), "not valid yet"),
    "issuer": (lambda: hs_token(iss="https://evil.example/"), "another issuer"),
    "audience": (lambda: hs_token(aud="someone-else"), "audience"),
    "no-aud": (lambda: hs_token(aud=None), "'aud' claim"),
    "no-iss": (lambda: hs_token(iss=None), "'iss' claim"),
    "no-exp": (lambda: hs_token(exp=None), "'exp' claim"),
    "no-sub": (lambda: hs_token(sub=None), "'sub' claim"),
}


@pytest.mark.parametrize(("mint", "reason"), INVALID.values(), ids=INVALID.keys())
def test_invalid_token_is_401_invalid_token_naming_the_reason(
    hs_client: FluxLitTestClient, mint: Any, reason: str
) -> None:
    token = mint()
    response = hs_client.api_get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert challenge(response).startswith('Bearer error="invalid_token"')
    assert reason in challenge(response)
    assert reason in response.json()["detail"]


def test_a_token_whose_subject_is_not_a_string_is_refused_as_not_valid(hs_client: FluxLitTestClient) -> None:
    # PyJWT (>= 2.10) refuses a non-string `sub` itself; that error has no reason of its own in our words.
    response = hs_client.api_get("/me", headers=bearer(hs_token(sub=42)))
    assert response.status_code == 401
    assert challenge(response) == 'Bearer error="invalid_token", error_description="the token is not valid"'


def test_refusal_never_echoes_the_token(hs_client: FluxLitTestClient) -> None:
    token = hs_token(exp=int(time.time()) - 60)
    response = hs_client.api_get("/me", headers=bearer(token))
    assert token not in response.text
    assert token.split(".")[2] not in challenge(response)


def test_unsigned_alg_none_token_is_refused(hs_client: FluxLitTestClient) -> None:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims())}."
    response = hs_client.api_get("/me", headers=bearer(unsigned))
    assert response.status_code == 401
    assert "algorithm is not accepted" in challenge(response)


def test_expired_token_within_leeway_is_accepted() -> None:
    client = FluxLitTestClient(build_app(JWTBearer(SECRET, issuer=ISSUER, audience=AUDIENCE, leeway=30)))
    response = client.api_get("/me", headers=bearer(hs_token(exp=int(time.time()) - 10)))
    assert response.status_code == 200


def test_expired_token_beyond_leeway_is_refused() -> None:
    client = FluxLitTestClient(build_app(JWTBearer(SECRET, issuer=ISSUER, audience=AUDIENCE, leeway=30)))
    response = client.api_get("/me", headers=bearer(hs_token(exp=int(time.time()) - 60)))
    assert response.status_code == 401


def test_one_of_several_audiences_is_enough() -> None:
    client = FluxLitTestClient(build_app(JWTBearer(SECRET, audience=["other", AUDIENCE])))
    assert client.api_get("/me", headers=bearer(hs_token())).status_code == 200


def test_realm_appears_in_the_challenge() -> None:
    client = FluxLitTestClient(build_app(JWTBearer(SECRET, realm="fluxlit")))
    assert challenge(client.api_get("/me")) == 'Bearer realm="fluxlit"'


def test_rs256_token_verifies_with_the_public_key(rsa_keys: tuple[Any, bytes]) -> None:
    private, public = rsa_keys
    client = FluxLitTestClient(build_app(JWTBearer(public, algorithms=["RS256"], issuer=ISSUER, audience=AUDIENCE)))
    token = jwt.encode(claims(), private, algorithm="RS256")
    assert client.api_get("/me", headers=bearer(token)).json()["sub"] == "alice"


def test_rs256_token_signed_by_another_key_is_refused(
    rsa_keys: tuple[Any, bytes], other_rsa_keys: tuple[Any, bytes]
) -> None:
    client = FluxLitTestClient(build_app(JWTBearer(rsa_keys[1], algorithms=["RS256"])))
    token = jwt.encode(claims(), other_rsa_keys[0], algorithm="RS256")
    response = client.api_get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert "signature does not verify" in challenge(response)


def test_hs256_token_forged_with_the_public_key_as_secret_is_refused(rsa_keys: tuple[Any, bytes]) -> None:
    """Algorithm confusion: an attacker signs HS256 with the (public) RSA key as the HMAC secret."""
    public = rsa_keys[1]
    client = FluxLitTestClient(build_app(JWTBearer(public, algorithms=["RS256"])))
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(hmac.new(public, header + b"." + payload, hashlib.sha256).digest())
    forged = (header + b"." + payload + b"." + signature.rstrip(b"=")).decode()
    response = client.api_get("/me", headers=bearer(forged))
    assert response.status_code == 401


# --- scopes and roles ---


def test_scope_string_grants_the_route(hs_client: FluxLitTestClient) -> None:
    response = hs_client.api_get("/items", headers=bearer(hs_token(scope="profile items:read")))
    assert response.status_code == 200


def test_scp_list_claim_grants_the_route(hs_client: FluxLitTestClient) -> None:
    response = hs_client.api_get("/items", headers=bearer(hs_token(scp=["items:read"])))
    assert response.status_code == 200


def test_missing_scope_is_403_insufficient_scope_naming_what_is_needed(hs_client: FluxLitTestClient) -> None:
    response = hs_client.api_delete("/items", headers=bearer(hs_token(scope="items:read")))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in challenge(response)
    assert 'scope="items:read items:write"' in challenge(response)
    assert "items:write" in response.json()["detail"]


def test_scope_check_without_a_token_is_401_not_403(hs_client: FluxLitTestClient) -> None:
    assert hs_client.api_get("/items").status_code == 401


def test_scope_check_with_an_expired_token_is_401_not_403(hs_client: FluxLitTestClient) -> None:
    token = hs_token(scope="items:read", exp=int(time.time()) - 60)
    assert hs_client.api_get("/items", headers=bearer(token)).status_code == 401


def test_any_listed_role_grants_the_route(hs_client: FluxLitTestClient) -> None:
    assert hs_client.api_get("/admin", headers=bearer(hs_token(roles=["ops"]))).status_code == 200


def test_no_listed_role_is_403(hs_client: FluxLitTestClient) -> None:
    response = hs_client.api_get("/admin", headers=bearer(hs_token(roles=["viewer"])))
    assert response.status_code == 403
    assert "admin or ops" in response.json()["detail"]


def test_require_all_needs_every_role(hs_client: FluxLitTestClient) -> None:
    assert hs_client.api_get("/audit", headers=bearer(hs_token(roles=["admin"]))).status_code == 403
    assert hs_client.api_get("/audit", headers=bearer(hs_token(roles=["admin", "auditor"]))).status_code == 200


def test_token_with_an_audience_is_refused_by_an_api_that_names_none() -> None:
    client = FluxLitTestClient(build_app(JWTBearer(SECRET)))
    assert client.api_get("/me", headers=bearer(hs_token())).status_code == 401


def test_roles_can_come_from_a_nested_claim() -> None:
    client = FluxLitTestClient(build_app(JWTBearer(SECRET, audience=AUDIENCE, role_claims=["realm_access.roles"])))
    token = hs_token(realm_access={"roles": ["admin"]})
    assert client.api_get("/admin", headers=bearer(token)).status_code == 200


def test_openapi_declares_the_bearer_security_scheme(hs_client: FluxLitTestClient) -> None:
    document = hs_client.openapi()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert {"bearer": []} in document["paths"]["/me"]["get"]["security"]


# --- configuration mistakes fail at construction ---


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": "short"}, "needs at least 32"),
        ({"key": SECRET, "algorithms": ["HS512"]}, "needs at least 64"),
        ({"key": SECRET, "algorithms": ["none"]}, "not usable"),
        ({"key": SECRET, "algorithms": []}, "not usable"),
        ({"key": SECRET, "algorithms": "HS256"}, "must be a list"),
        ({"key": SECRET, "algorithms": ["HS256", "RS256"]}, "mixes HMAC and public-key"),
        ({"key": SECRET, "leeway": -1}, "0 or more seconds"),
        ({"key": "not a pem key", "algorithms": ["RS256"]}, "does not fit RS256"),
        ({"key": 12345}, "must be a str or bytes secret"),
    ],
)
def test_bad_jwt_configuration_is_a_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        JWTBearer(**kwargs)


def test_a_private_key_is_refused_for_verification(rsa_keys: tuple[Any, bytes]) -> None:
    private_pem = rsa_keys[0].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError, match="give the public key"):
        JWTBearer(private_pem, algorithms=["RS256"])


def test_an_rsa_key_under_2048_bits_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    pem = weak.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConfigError, match="RSA key has 1024 bits; use at least 2048"):
        JWTBearer(pem, algorithms=["RS256"])


def test_pem_key_as_hmac_secret_is_refused(rsa_keys: tuple[Any, bytes]) -> None:
    with pytest.raises(ConfigError, match="looks like a PEM key"):
        JWTBearer(rsa_keys[1], algorithms=["HS256"])


def test_require_scopes_needs_a_name() -> None:
    with pytest.raises(ValueError, match="one or more names"):
        RequireScopes(JWTBearer(SECRET))


# --- trusted forward-auth headers ---


def forward_client(peer: str, **auth_kwargs: Any) -> TestClient:
    auth = TrustedHeaderAuth(trusted_proxies="10.0.0.5", **auth_kwargs)
    return TestClient(FluxLitTestClient(build_app(auth)).gateway, client=(peer, 40000))


def test_forward_user_from_an_allowed_proxy_is_believed() -> None:
    with forward_client("10.0.0.5") as client:
        response = client.get("/api/me", headers={"X-Forwarded-User": "bob", "X-Forwarded-Groups": "staff, ops"})
    assert response.status_code == 200
    assert response.json() == {"sub": "bob", "scopes": [], "roles": ["ops", "staff"], "via": "forward"}


def test_the_forwarded_email_becomes_a_claim() -> None:
    with forward_client("10.0.0.5") as client:
        response = client.get(
            "/api/claims", headers={"X-Forwarded-User": "bob", "X-Forwarded-Email": "bob@example.com"}
        )
    assert response.status_code == 200
    assert response.json() == {"sub": "bob", "groups": [], "email": "bob@example.com"}


def test_forward_user_from_any_other_peer_is_ignored() -> None:
    with forward_client("203.0.113.9") as client:
        response = client.get("/api/me", headers={"X-Forwarded-User": "admin", "X-Forwarded-Groups": "admin"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "ForwardAuth"


def test_forward_user_header_sent_twice_is_refused() -> None:
    with forward_client("10.0.0.5") as client:
        response = client.get("/api/me", headers=[("X-Forwarded-User", "bob"), ("X-Forwarded-User", "admin")])
    assert response.status_code == 401


def test_allowed_proxy_without_a_user_header_is_401() -> None:
    with forward_client("10.0.0.5") as client:
        assert client.get("/api/me").status_code == 401


def test_forward_groups_feed_role_checks() -> None:
    with forward_client("10.0.0.5") as client:
        ok = client.get("/api/admin", headers={"X-Forwarded-User": "bob", "X-Forwarded-Groups": "admin"})
        denied = client.get("/api/admin", headers={"X-Forwarded-User": "bob", "X-Forwarded-Groups": "viewer"})
    assert (ok.status_code, denied.status_code) == (200, 403)


def test_custom_user_header_name_is_honoured() -> None:
    with forward_client("10.0.0.5", user_header="Remote-User") as client:
        assert client.get("/api/me", headers={"Remote-User": "carol"}).json()["sub"] == "carol"
        assert client.get("/api/me", headers={"X-Forwarded-User": "carol"}).status_code == 401


def test_untrusted_client_cannot_pose_as_the_proxy_with_x_forwarded_for() -> None:
    """The gateway drops X-Forwarded-For from untrusted peers, so the socket peer decides."""
    with forward_client("203.0.113.9") as client:
        response = client.get("/api/me", headers={"X-Forwarded-For": "10.0.0.5", "X-Forwarded-User": "admin"})
    assert response.status_code == 401


def test_socket_peer_is_unknown_when_the_gateway_rewrote_the_client_from_x_forwarded_for() -> None:
    """Fail closed: the end client named by X-Forwarded-For must never be mistaken for the proxy."""
    scope = {"client": ("203.0.113.9", 0), "state": {"forwarded_client": "203.0.113.9"}}
    assert socket_peer(scope) is None


def test_socket_peer_prefers_the_peer_the_gateway_recorded() -> None:
    scope = {"client": ("203.0.113.9", 0), "state": {"forwarded_client": "203.0.113.9", "fluxlit_peer": "10.0.0.5"}}
    assert socket_peer(scope) == "10.0.0.5"


def test_socket_peer_is_the_asgi_client_without_a_gateway() -> None:
    assert socket_peer({"client": ("10.0.0.5", 1234)}) == "10.0.0.5"


def test_forward_auth_behind_a_proxy_that_sets_x_forwarded_for_believes_the_proxy() -> None:
    auth = TrustedHeaderAuth(trusted_proxies="127.0.0.1")
    with TestClient(FluxLitTestClient(build_app(auth)).gateway, client=("127.0.0.1", 40000)) as client:
        response = client.get("/api/me", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-User": "bob"})
    assert response.status_code == 200
    assert response.json()["sub"] == "bob"


def test_empty_trusted_proxy_list_is_refused() -> None:
    with pytest.raises(ValueError, match="trusts no proxy"):
        TrustedHeaderAuth(trusted_proxies="")
