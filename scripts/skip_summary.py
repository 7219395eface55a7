"""Print one line that sums the skip reasons of several pytest runs (the FLUXLIT_SKIP_LOG file of `make test`)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests._external import summary_line


def main(path: str) -> int:
    reasons: Counter[str] = Counter()
    log = Path(path)
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            if line.strip():
                reasons.update(json.loads(line))
    print(f"make test: {summary_line(reasons)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".pytest-skips.jsonl"))
