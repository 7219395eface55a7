"""Configuration: the settings of a run, where each value came from, and the pure rules for paths and trust."""

from __future__ import annotations

from fluxlit.config.settings import Settings

# fluxlit 0.13's name for the settings object: the same class, so it is accepted wherever settings= is.
FluxlitSettings = Settings

__all__ = ["FluxlitSettings", "Settings"]
