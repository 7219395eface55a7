"""The Streamlit child's layout: where the app, the API and the public mount are, as one frozen object.

The supervisor writes the whole layout into ``FLUXLIT_CHILD_LAYOUT`` (JSON) and, from the same object, the
variables the seed and the reference name, because user code and ``FluxLitTestClient.streamlit`` read and set
those. Inside the child every reader (the shell, ``PublicUrls``, ``ApiClient``) asks :func:`child_layout`.

Each field resolves in one order, first match wins:

1. its own variable, when set and not empty: ``FLUXLIT_APP``, ``FLUXLIT_API_PREFIX`` (else the reference's
   ``FLUXLIT_API_MOUNT_PATH``), ``FLUXLIT_ROOT_PATH``, ``FLUXLIT_INTERNAL_API_BASE``, ``FLUXLIT_TRUST_PROXY``,
   ``FLUXLIT_PUBLIC_BASE_URL``;
2. the field in ``FLUXLIT_CHILD_LAYOUT``;
3. the default: no app, the API prefix and mount unknown (the reader then asks the app's settings), the
   internal API at ``http://127.0.0.1:8000/api``, proxies untrusted, no public base URL.

A value is parsed and checked once per distinct environment: tests that set a variable see it on the next call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from fluxlit.config.paths import normalize_mount
from fluxlit.errors import ConfigError

LAYOUT_ENV = "FLUXLIT_CHILD_LAYOUT"
DEFAULT_INTERNAL_API_BASE = "http://127.0.0.1:8000/api"
_TRUTHY = {"1", "true", "yes", "on"}
# Each field's own variables, highest first; the order of this table is the order of resolution.
_FIELD_ENVS: dict[str, tuple[str, ...]] = {
    "app": ("FLUXLIT_APP",),
    "api_prefix": ("FLUXLIT_API_PREFIX", "FLUXLIT_API_MOUNT_PATH"),
    "root_path": ("FLUXLIT_ROOT_PATH",),
    "internal_api_base": ("FLUXLIT_INTERNAL_API_BASE",),
    "trust_proxy": ("FLUXLIT_TRUST_PROXY",),
    "public_base_url": ("FLUXLIT_PUBLIC_BASE_URL",),
}
_INPUTS = (LAYOUT_ENV, *(name for names in _FIELD_ENVS.values() for name in names))


class ChildLayoutError(ConfigError, ValueError):
    """A bad layout value; a ValueError too, which is what a bad public base URL always raised."""


@dataclass(frozen=True)
class ChildLayout:
    """``api_prefix``/``root_path`` are None when nothing set them: only the app's own settings know then."""

    app: str = ""
    api_prefix: str | None = None
    root_path: str | None = None
    internal_api_base: str = DEFAULT_INTERNAL_API_BASE
    trust_proxy: bool = False
    public_base_url: str = ""

    def environment(self) -> dict[str, str]:
        """What the supervisor puts in the child's environment: the layout, and the seed's variables from it."""
        env = {
            LAYOUT_ENV: json.dumps(asdict(self), sort_keys=True),
            "FLUXLIT_APP": self.app,
            "FLUXLIT_INTERNAL_API_BASE": self.internal_api_base,
            "FLUXLIT_TRUST_PROXY": "1" if self.trust_proxy else "0",
            "FLUXLIT_PUBLIC_BASE_URL": self.public_base_url,
        }
        if self.api_prefix is not None:
            env["FLUXLIT_API_PREFIX"] = self.api_prefix
        if self.root_path is not None:
            env["FLUXLIT_ROOT_PATH"] = self.root_path
        return env


def child_layout(environ: Mapping[str, str] | None = None) -> ChildLayout:
    """This process's layout (see the module docstring for the order); a bad value is a ConfigError naming it."""
    env = os.environ if environ is None else environ
    return _resolve(tuple(env.get(name) for name in _INPUTS))


@lru_cache(maxsize=8)
def _resolve(values: tuple[str | None, ...]) -> ChildLayout:
    raw = dict(zip(_INPUTS, values, strict=True))
    serialised = _serialised_layout(raw[LAYOUT_ENV])
    chosen: dict[str, Any] = {}
    for field, names in _FIELD_ENVS.items():
        own = next((raw[name] for name in names if raw[name]), None)
        if own is not None:
            chosen[field] = _parse(field, own, names[0] if raw[names[0]] else names[-1])
        elif serialised.get(field) is not None:
            chosen[field] = _parse(field, serialised[field], f"{LAYOUT_ENV}.{field}")
    return ChildLayout(**chosen)


def _serialised_layout(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ChildLayoutError(f"{LAYOUT_ENV} is not JSON ({error}): unset it, `fluxlit serve` writes it") from None
    if not isinstance(data, dict) or not set(data) <= set(_FIELD_ENVS):
        raise ChildLayoutError(f"{LAYOUT_ENV}={text!r} is not a layout object: unset it, `fluxlit serve` writes it")
    return data


def _parse(field: str, value: Any, name: str) -> Any:
    if field == "trust_proxy":
        return value if isinstance(value, bool) else str(value).strip().lower() in _TRUTHY
    text = str(value)
    if field == "api_prefix":
        return normalize_mount(text, name=name, allow_empty=False)
    if field == "root_path":
        return normalize_mount(text, name=name, allow_empty=True)
    if field == "public_base_url":
        return _public_base_url(text.strip(), name)
    return text


def _public_base_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ChildLayoutError(
            f"{name}={url!r} is not an absolute http(s) URL: try 'https://example.com' or 'https://example.com/apps/demo'"
        )
    return url
