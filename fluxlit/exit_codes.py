"""Every exit code `fluxlit` can end with, in one table (README documents the same table)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0  # clean stop after SIGTERM/SIGINT
    USAGE = 2  # bad flag, bad setting, unreadable fluxlit.toml
    TARGET_IMPORT_FAILED = 3  # the app target could not be imported or is not an app
    CHILD_START_FAILED = 4  # Streamlit never became ready on its first start
    CRASH_BUDGET_EXHAUSTED = 5  # Streamlit kept dying: too many failures inside the window
    PORT_UNAVAILABLE = 6  # a public bind failed (address in use, permission)
    CHILD_EXITED = 7  # Streamlit exited while --on-child-exit=exit
    INTERNAL_ERROR = 70  # a bug: please report it
