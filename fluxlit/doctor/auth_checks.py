"""Doctor checks of the API's authentication (fluxlit.auth), read from the dependencies of the loaded app's routes.

What is found: every TrustedHeaderAuth and JWTBearer the API's routes depend on through FastAPI ``Depends`` (on
the route, its router or the app, directly or inside RequireScopes/RequireRoles), in mounted FastAPI apps too.
An authenticator called by hand inside an endpoint or a middleware is not seen. fluxlit.auth reads no env vars
or files; JWTBearer already refuses at construction what can be refused then (short HMAC secrets, mixed
algorithm families, private or small RSA keys), so such an app fails to import and these checks say how to fix it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fastapi.routing

from fluxlit.auth.forward import TrustedHeaderAuth
from fluxlit.config.forwarded import Network, parse_trusted
from fluxlit.doctor.model import Check, DoctorContext, failed, not_checked, passed, warned
from fluxlit.errors import ConfigError, TargetError

# Clock skew allowance beyond which expired tokens stay usable for a meaningful time.
MAX_LEEWAY_S = 300.0
# Sub-apps mounted in sub-apps: deeper than this is not a real layout (and stops a self-mount looping).
MAX_MOUNT_DEPTH = 8
_AUTH_EXTRA_FIX = "pip install 'fluxlit[auth]' (PyJWT with its crypto extra)"


@dataclass
class Authenticators:
    """The authenticator objects the API's routes depend on, each with the paths of the routes using it."""

    forward: dict[int, tuple[TrustedHeaderAuth, set[str]]] = field(default_factory=dict)
    jwt: dict[int, tuple[Any, set[str]]] = field(default_factory=dict)

    def add(self, call: object, path: str) -> None:
        jwt_module = sys.modules.get("fluxlit.auth.jwt_bearer")
        if isinstance(call, TrustedHeaderAuth):
            self.forward.setdefault(id(call), (call, set()))[1].add(path)
        elif jwt_module is not None and isinstance(call, jwt_module.JWTBearer):
            self.jwt.setdefault(id(call), (call, set()))[1].add(path)


def find_authenticators(api: object) -> Authenticators:
    """Walk the routes of a FastAPI/Starlette app (mounts included) and collect the authenticators they use."""
    found = Authenticators()
    for path, dependant in _route_dependants(getattr(api, "routes", ()), "", MAX_MOUNT_DEPTH):
        for call in _calls(dependant):
            found.add(call, path)
    return found


def _route_dependants(routes: Iterable[Any], prefix: str, depth: int) -> Iterator[tuple[str, Any]]:
    # FastAPI 0.16x keeps an included router as one lazy entry; iter_route_contexts expands it into its routes.
    expand = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in expand(list(routes)) if expand is not None else routes:
        path = prefix + str(getattr(route, "path", ""))
        dependant = getattr(route, "dependant", None)
        if dependant is not None:
            yield path, dependant
        children = getattr(route, "routes", None)
        if children is not None and depth > 0:  # a Mount of a sub-app or router
            yield from _route_dependants(children, path, depth - 1)


def _calls(dependant: Any) -> Iterator[object]:
    # FastAPI builds each dependency tree once, when the route is declared, so it is finite and acyclic.
    for sub in getattr(dependant, "dependencies", ()):
        yield sub.call
        yield from _calls(sub)


def _authenticators(ctx: DoctorContext) -> Authenticators | TargetError:
    target = ctx.target
    if isinstance(target, TargetError):
        return target
    cached = ctx.cache.get("authenticators")
    if not isinstance(cached, Authenticators):
        cached = ctx.cache["authenticators"] = find_authenticators(target.api)
    return cached


def _routes(paths: set[str]) -> str:
    shown = sorted(paths)
    return ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")


def _trusts_everyone(networks: tuple[Network, ...]) -> bool:
    return any(network.prefixlen == 0 for network in networks)


def _covered(network: Network, by: tuple[Network, ...]) -> bool:
    first, last = network.network_address, network.broadcast_address
    return any(first in outer and last in outer for outer in by)


def check_forward_auth(ctx: DoctorContext) -> Check:
    """TrustedHeaderAuth takes identity headers only from named proxies, and FLUXLIT_FORWARDED_ALLOW_IPS trusts them."""
    found = _authenticators(ctx)
    if isinstance(found, TargetError):
        return not_checked(check_forward_auth, "the target did not load")
    if not found.forward:
        return passed("forward_auth", "not used (no TrustedHeaderAuth among the API's dependencies)")
    for auth, paths in found.forward.values():
        if _trusts_everyone(auth.trusted):
            return failed(
                "forward_auth",
                f"TrustedHeaderAuth on {_routes(paths)} believes {auth.user_header} from any address: anyone who "
                "reaches the port can sign in as anyone by sending that header",
                "pass trusted_proxies= the address of the forward-auth proxy only, e.g. '10.0.0.5'",
            )
    settings = ctx.settings
    if settings is None:
        return not_checked(check_forward_auth, "the settings are invalid")
    allowed = parse_trusted(settings.forwarded_allow_ips)
    if _trusts_everyone(allowed):
        return warned(
            "forward_auth",
            f"FLUXLIT_FORWARDED_ALLOW_IPS={settings.forwarded_allow_ips!r} believes X-Forwarded-For/Proto from any "
            "peer: behind forward auth any client can fake the address and scheme the API logs and acts on",
            "set FLUXLIT_FORWARDED_ALLOW_IPS to the forward-auth proxy's address(es), as in trusted_proxies=",
        )
    proxies = {network for auth, _ in found.forward.values() for network in auth.trusted}
    missing = sorted(str(network) for network in proxies if not _covered(network, allowed))
    if missing:
        return warned(
            "forward_auth",
            f"TrustedHeaderAuth trusts {', '.join(missing)} but FLUXLIT_FORWARDED_ALLOW_IPS="
            f"{settings.forwarded_allow_ips!r} does not: the gateway drops that proxy's X-Forwarded-For/Proto, so "
            "the API sees the proxy's address and scheme instead of the user's",
            f"add {', '.join(missing)} to FLUXLIT_FORWARDED_ALLOW_IPS",
        )
    paths = set().union(*(paths for _, paths in found.forward.values()))
    shown = ", ".join(sorted(str(network) for network in proxies))
    return passed("forward_auth", f"TrustedHeaderAuth on {_routes(paths)} believes only {shown}")


def check_jwt_auth(ctx: DoctorContext) -> Check:
    """JWTBearer can run (PyJWT installed, a valid key); each requires exp and, with a public key, an audience."""
    found = _authenticators(ctx)
    if isinstance(found, TargetError):
        return _jwt_import_failure(found) or not_checked(check_jwt_auth, "the target did not load")
    if not found.jwt:
        return passed("jwt_auth", "not used (no JWTBearer among the API's dependencies)")
    problems: list[tuple[str, str]] = []
    described = []
    for bearer, paths in found.jwt.values():
        where = f"JWTBearer({', '.join(bearer.algorithms)}) on {_routes(paths)}"
        problems += _bearer_problems(bearer, where)
        described.append(
            f"{where} (issuer {bearer.issuer or 'not checked'}, audience {bearer.audience or 'not checked'})"
        )
    if problems:
        detail, fix = problems[0]
        more = f" (and {len(problems) - 1} more issue(s))" if len(problems) > 1 else ""
        return warned("jwt_auth", detail + more, fix)
    return passed("jwt_auth", "; ".join(described))


def _bearer_problems(bearer: Any, where: str) -> list[tuple[str, str]]:
    problems = []
    if "exp" not in bearer.require:
        problems.append(
            (
                f"{where} does not require 'exp': a token without an expiry is accepted forever",
                "keep 'exp' in JWTBearer(require=...) (it is there by default)",
            )
        )
    hmac = bearer.algorithms[0].startswith("HS")
    if not hmac and bearer.audience is None:
        problems.append(
            (
                f"{where} checks no audience: any token its issuer signed, for any application, is accepted",
                "pass audience= this API's identifier as the issuer puts it in 'aud'",
            )
        )
    if bearer.leeway > MAX_LEEWAY_S:
        problems.append(
            (
                f"{where} allows leeway={bearer.leeway:g} s: expired tokens stay usable that long",
                f"use a leeway of at most {MAX_LEEWAY_S:g} s (30-60 covers real clock skew)",
            )
        )
    return problems


def _jwt_import_failure(error: TargetError) -> Check | None:
    """A target that failed because JWTBearer could not be set up, as a jwt_auth failure with the specific fix."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ImportError) and ("PyJWT" in str(cause) or cause.name == "jwt"):
            return failed("jwt_auth", f"JWTBearer needs PyJWT, which is not installed ({cause})", _AUTH_EXTRA_FIX)
        if isinstance(cause, ConfigError) and str(cause).startswith("JWTBearer"):
            fix = "correct the JWTBearer(...) arguments in the app as the message says"
            if "not usable" in str(cause):
                fix += "; key-pair algorithms (RS/PS/ES/EdDSA) also need " + _AUTH_EXTRA_FIX
            return failed("jwt_auth", str(cause), fix)
        cause = cause.__cause__ or cause.__context__
    return None
