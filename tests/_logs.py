"""fluxlit's JSON log lines captured in memory, for tests that read what a request or a run logged."""

from __future__ import annotations

import io
import json
from typing import Any


class JsonLog(io.StringIO):
    """The stream `configure_logging(..., "json", stream=...)` writes to, read back one dict a line."""

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines() if line.strip()]
