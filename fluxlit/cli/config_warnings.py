"""What `fluxlit config` warns about besides bad values (those are errors): FLUXLIT_* variables nothing reads.

A misspelt variable is silently ignored by every other command; `fluxlit config` names it, and with --strict
exits 1 for it, so CI catches a typo, or a fluxlit 0.13 setting this version lacks.
"""

from __future__ import annotations

from collections.abc import Mapping

from fluxlit.config.settings import SETTING_SPECS

# Variables FluxLit reads that are not settings: the wiring `serve` hands the Streamlit child and the extra
# workers, an external Streamlit to proxy to, and the switches of the test helpers and URL sessions.
RUNTIME_ENV = frozenset(
    {
        "FLUXLIT_API_PREFIX",
        "FLUXLIT_CHILD_LAYOUT",
        "FLUXLIT_INTERNAL_API_BASE",
        "FLUXLIT_WORKER_SETTINGS",
        "FLUXLIT_WORKER_STATE_FILE",
        "FLUXLIT_STREAMLIT_UPSTREAM",
        "FLUXLIT_TESTS",
        "FLUXLIT_TEST_PAGE_OVERRIDES",
        "FLUXLIT_FORCE_URL_SESSION_IN_TESTS",
        "FLUXLIT_DISABLE_URL_SESSION",
    }
)
KNOWN_ENV = frozenset({spec.env for spec in SETTING_SPECS}) | RUNTIME_ENV


def unknown_env_vars(environ: Mapping[str, str]) -> list[str]:
    """The FLUXLIT_* names in `environ` that FluxLit does not read, sorted."""
    return sorted(name for name in environ if name.startswith("FLUXLIT_") and name not in KNOWN_ENV)


def warning(code: str, message: str) -> dict[str, str]:
    """One entry of `fluxlit config --json`'s warnings, in the reference's shape."""
    return {"level": "warning", "code": code, "message": message}


def env_warnings(environ: Mapping[str, str]) -> list[dict[str, str]]:
    return [
        warning(
            "unknown_env_var",
            f"{name} is set, but FluxLit reads no such variable: check its spelling ('fluxlit config --json' lists "
            "the variable of every setting), or unset it",
        )
        for name in unknown_env_vars(environ)
    ]
