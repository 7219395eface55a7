"""Authentication for the API: JWT bearer tokens, trusted forward-auth headers, scope and role checks.

``pip install "fluxlit[auth]"`` brings PyJWT with the ``crypto`` extra (RS256 and other key-pair algorithms)::

    from typing import Annotated
    from fastapi import Depends
    from fluxlit.auth import JWTBearer, Principal, RequireScopes

    auth = JWTBearer(public_key_pem, algorithms=["RS256"], issuer="https://id.example.com/", audience="my-api")

    @app.api.get("/me")
    def me(user: Annotated[Principal, Depends(auth)]) -> dict[str, str]:
        return {"sub": user.subject}

    @app.api.delete("/items/{item_id}", dependencies=[Depends(RequireScopes(auth, "items:write"))])
    def delete_item(item_id: int) -> None: ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fluxlit.auth.forward import TrustedHeaderAuth
from fluxlit.auth.principal import Principal
from fluxlit.auth.require import RequireRoles, RequireScopes

if TYPE_CHECKING:
    from fluxlit.auth.jwt_bearer import JWTBearer

__all__ = ["JWTBearer", "Principal", "RequireRoles", "RequireScopes", "TrustedHeaderAuth"]


def __getattr__(name: str) -> Any:
    # JWTBearer needs PyJWT (the "auth" extra); forward auth and the checks work without it.
    if name == "JWTBearer":
        value = importlib.import_module("fluxlit.auth.jwt_bearer").JWTBearer
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fluxlit.auth' has no attribute {name!r}")
