"""fluxlit.auth corners: reprs, the forwarded e-mail claim, odd token claims and weak keys."""

import time
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
from fluxlit.auth import JWTBearer, Principal, TrustedHeaderAuth  # noqa: E402

SECRET = "s3cret-for-coverage-tests-0123456789abcdef"


def me_app(auth: Any) -> FluxLit:
    app = FluxLit()

    @app.api.get("/me")
    async def me(user: Annotated[Principal, Depends(auth)]) -> dict[str, Any]:
        return {"sub": user.subject, "claims": user.claims}

    return app


def test_reprs_name_the_configuration_never_the_key() -> None:
    bearer = JWTBearer(SECRET, issuer="https://id.example/", audience="api")
    assert repr(bearer) == "JWTBearer(algorithms=['HS256'], issuer='https://id.example/', audience='api')"
    assert SECRET not in repr(bearer)
    forward = TrustedHeaderAuth(trusted_proxies="10.0.0.0/8")
    assert repr(forward) == "TrustedHeaderAuth(user_header='X-Forwarded-User', trusted=['10.0.0.0/8'])"


def test_an_unknown_name_on_the_package_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"module 'fluxlit\.auth' has no attribute 'JWTBearr'"):
        _ = fluxlit.auth.JWTBearr


def test_the_forwarded_email_becomes_a_claim() -> None:
    auth = TrustedHeaderAuth(trusted_proxies="10.0.0.5")
    with TestClient(FluxLitTestClient(me_app(auth)).gateway, client=("10.0.0.5", 40000)) as client:
        response = client.get("/api/me", headers={"X-Forwarded-User": "bob", "X-Forwarded-Email": "bob@example.com"})
    assert response.status_code == 200
    assert response.json()["claims"] == {"sub": "bob", "groups": [], "email": "bob@example.com"}


def test_a_token_whose_subject_is_not_a_string_is_refused_as_not_valid() -> None:
    # PyJWT (>= 2.10) refuses a non-string `sub` itself; that error has no reason of its own in our words.
    numeric = jwt.encode({"sub": 42, "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    client = FluxLitTestClient(me_app(JWTBearer(SECRET)))
    response = client.api_get("/me", headers={"Authorization": f"Bearer {numeric}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="the token is not valid"'
    )


def test_an_hmac_key_must_be_text_or_bytes() -> None:
    with pytest.raises(ConfigError, match=r"JWTBearer key for \['HS256'\] must be a str or bytes secret"):
        JWTBearer(12345)


def test_a_short_rsa_key_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    pem = weak.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConfigError, match="RSA key has 1024 bits; use at least 2048"):
        JWTBearer(pem, algorithms=["RS256"])
