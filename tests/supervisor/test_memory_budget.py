"""The shared reassembly budget, and the memory limit its default comes from (cgroup v2, v1, or RAM)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fluxlit_supervisor.websocket.memory_budget import MemoryBudget, memory_limit_bytes

PHYSICAL = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_reserve_counts_what_fits_and_release_gives_it_back() -> None:
    budget = MemoryBudget(100)
    assert budget.reserve(60) is True
    assert budget.reserve(41) is False
    assert budget.reserve(40) is True
    assert budget.held == 100
    budget.release(100)
    budget.release(5)  # more than held never goes negative
    assert budget.held == 0


def test_a_budget_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError, match=r"MemoryBudget\(limit=0\) must be a positive number of bytes"):
        MemoryBudget(0)


def fake_system(tmp_path: Path, cgroup_line: str | None, files: dict[str, str]) -> tuple[Path, Path]:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    proc.mkdir()
    if cgroup_line is not None:
        (proc / "cgroup").write_text(cgroup_line + "\n")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root, proc


@pytest.mark.parametrize(
    ("cgroup_line", "files", "expected"),
    [
        ("0::/", {"memory.max": str(512 << 20)}, 512 << 20),
        ("0::/kubepods/pod1", {"kubepods/pod1/memory.max": str(256 << 20), "memory.max": "max"}, 256 << 20),
        ("0::/", {"memory.max": "max"}, PHYSICAL),
        (None, {"memory/memory.limit_in_bytes": str(1 << 30)}, 1 << 30),
        (None, {"memory/memory.limit_in_bytes": str(9223372036854771712)}, PHYSICAL),  # v1's "no limit"
        (None, {}, PHYSICAL),
        ("0::/", {"memory.max": str(PHYSICAL * 2)}, PHYSICAL),  # a limit above RAM is no limit
    ],
)
def test_the_memory_limit_is_the_lowest_of_cgroup_and_ram(
    tmp_path: Path, cgroup_line: str | None, files: dict[str, str], expected: int
) -> None:
    root, proc = fake_system(tmp_path, cgroup_line, files)
    assert memory_limit_bytes(root, proc) == expected


def test_this_machine_has_a_memory_limit() -> None:
    assert 0 < memory_limit_bytes() <= PHYSICAL
