"""One process-wide count of bytes held on behalf of clients, against a limit; and the memory that limit comes from.

A per-message cap is not a memory bound: N connections each holding an unfinished message just under it hold
N times as much. WebSocket reassembly (hypercorn's for client messages, the proxy's for upstream ones) charges
every fragment here before keeping it and releases it when the message is delivered or the connection ends.
Everything runs on the event loop thread, so the count needs no lock.
"""

from __future__ import annotations

import os
from pathlib import Path

_UNLIMITED_CGROUP = 1 << 60  # cgroup v1 reports "no limit" as a huge page-aligned number


class MemoryBudget:
    """`reserve` says whether `size` more bytes fit under `limit`, and counts them if so."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"MemoryBudget(limit={limit!r}) must be a positive number of bytes")
        self.limit = limit
        self.held = 0

    def reserve(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def release(self, size: int) -> None:
        self.held = max(0, self.held - size)


def memory_limit_bytes(cgroup_root: Path = Path("/sys/fs/cgroup"), proc_self: Path = Path("/proc/self")) -> int:
    """The memory this process may use: its cgroup's limit (v2, then v1) when set and lower, else physical RAM."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limits = [physical]
    for path in _cgroup_limit_files(cgroup_root, proc_self):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < _UNLIMITED_CGROUP:
            limits.append(int(text))
    return min(limits)


def _cgroup_limit_files(cgroup_root: Path, proc_self: Path) -> list[Path]:
    own = ""
    try:
        for line in (proc_self / "cgroup").read_text().splitlines():
            if line.startswith("0::"):  # cgroup v2: "0::/path/of/this/cgroup"
                own = line[3:].strip().strip("/")
    except OSError:
        pass
    files = [cgroup_root / own / "memory.max"] if own else []
    return [*files, cgroup_root / "memory.max", cgroup_root / "memory" / "memory.limit_in_bytes"]
