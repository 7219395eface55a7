"""fluxlit's JSON log lines captured in memory, and the access observer's log calls recorded, for tests that read
what a request or a run logged."""

from __future__ import annotations

import io
import json
from typing import Any


class JsonLog(io.StringIO):
    """The stream `configure_logging(..., "json", stream=...)` writes to, read back one dict a line."""

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines() if line.strip()]


class RecordingLogger:
    """Takes the access observer's log calls and keeps their fields."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def log(self, level: int, event: str, **fields: Any) -> None:
        self.lines.append({"event": event, **fields})
