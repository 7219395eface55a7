"""What `fluxlit serve --workers N` hands each extra gateway process in its environment: settings and state file.

Both sides import it: the serving process writes these variables (fluxlit.runtime.serve_plan) and the worker reads them
(fluxlit.runtime.gateway_worker), so neither imports the other for them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from fluxlit.config.settings import Settings

SETTINGS_ENV = "FLUXLIT_WORKER_SETTINGS"
STATE_FILE_ENV = "FLUXLIT_WORKER_STATE_FILE"


def settings_to_json(settings: Settings) -> str:
    return json.dumps(dataclasses.asdict(settings))


def settings_from_json(text: str) -> Settings:
    return Settings(**json.loads(text))


def handoff_environment(settings: Settings, state_file: Path | None) -> dict[str, str]:
    """What a worker needs besides its sockets: the settings of this run and where Streamlit's state is (none
    when the run fronts an external Streamlit)."""
    env = {SETTINGS_ENV: settings_to_json(settings)}
    if state_file is not None:
        env[STATE_FILE_ENV] = str(state_file)
    return env
