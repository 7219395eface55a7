"""Pure rules for the public mount and the API prefix: normalising them and splitting request paths."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from fluxlit.errors import ConfigError

DOCS_PATHS = frozenset({"/docs", "/docs/", "/redoc", "/redoc/", "/openapi.json"})


def normalize_mount(value: str, *, name: str, allow_empty: bool) -> str:
    """Return `value` as `/a/b` (no trailing slash), or "" for the root when allowed."""
    text = value.strip()
    if text in ("", "/"):
        if allow_empty:
            return ""
        raise ConfigError(f"{name}={value!r} must not be empty: try '/api'")
    if not text.startswith("/"):
        raise ConfigError(f"{name}={value!r} must start with '/': try '/{text.strip('/')}'")
    if "?" in text or "#" in text or "%" in text or " " in text:
        raise ConfigError(f"{name}={value!r} may only hold plain path segments: try '/{text.strip('/')}'")
    segments = [s for s in text.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise ConfigError(f"{name}={value!r} must not contain '.' or '..' segments")
    if not segments:  # only slashes, e.g. '//': the root
        if allow_empty:
            return ""
        raise ConfigError(f"{name}={value!r} must not be empty: try '/api'")
    return "/" + "/".join(segments)


def is_under(path: str, prefix: str) -> bool:
    """True when `path` is `prefix` itself or a path below it (segment-wise, so /apix is not under /api)."""
    if not prefix:
        return True
    return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class RelativePath:
    """A request path with the public mount removed, in both decoded and raw (byte-exact) form."""

    path: str
    raw_path: bytes


def strip_mount(path: str, raw_path: bytes | None, mount: str) -> RelativePath:
    """Remove the mount when present; a request without it (behind a strip-prefix proxy) passes unchanged."""
    raw = raw_path if raw_path is not None else quote(path).encode("ascii")
    if not mount or not is_under(path, mount):
        return RelativePath(path, raw)
    rel = path[len(mount) :] or "/"
    mount_bytes = mount.encode("ascii")
    if raw.startswith(mount_bytes) and (len(raw) == len(mount_bytes) or raw[len(mount_bytes)] == ord("/")):
        rel_raw = raw[len(mount_bytes) :] or b"/"
    else:
        # The mount was spelled with escapes (e.g. %2F); fall back to a canonical encoding of what we matched.
        rel_raw = quote(rel).encode("ascii")
    return RelativePath(rel, rel_raw)
