"""The documented process exit codes of a supervised run."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Why `run_supervised` returned; the product adds USAGE=2 and TARGET_IMPORT_FAILED=3 itself.

    | code | name                   | meaning                                                        |
    |------|------------------------|----------------------------------------------------------------|
    | 0    | OK                     | clean stop after a signal or a stop request                    |
    | 4    | CHILD_START_FAILED     | the child never became ready on its first start                |
    | 5    | CRASH_BUDGET_EXHAUSTED | too many child failures inside the policy's failure window     |
    | 6    | PORT_UNAVAILABLE       | a public bind failed (address in use, permission, bad path)    |
    | 7    | CHILD_EXITED           | the child exited while the policy says on_exit="exit"          |
    | 70   | INTERNAL_ERROR         | the server or the supervisor itself failed unexpectedly        |
    """

    OK = 0
    CHILD_START_FAILED = 4
    CRASH_BUDGET_EXHAUSTED = 5
    PORT_UNAVAILABLE = 6
    CHILD_EXITED = 7
    INTERNAL_ERROR = 70
