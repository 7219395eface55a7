"""Before/after on one machine: `fluxlit serve` from two source trees, measured interleaved in the same sitting.

    git archive HEAD | (mkdir -p /tmp/before && tar -x -C /tmp/before)
    python bench/ab_trees.py cold /tmp/before . --rounds 7 [--reference]
    python bench/ab_trees.py ws /tmp/before . --handshakes 300 --rounds 5
    python bench/ab_trees.py rss /tmp/before . --rounds 3

Each tree serves bench/apps/bench_app.py from its own root (so its own `fluxlit`, `supervisor` and `proxy` are
imported: the working directory comes first on sys.path, then its supervisor/ and proxy/ folders where the
packages live one level down). `cold`: start to the first /api/readyz 200, the order
reversed every round. `ws`: WebSocket handshakes to each gateway and straight to each one's Streamlit child,
alternating handshake by handshake; medians per round. `rss`: gateway RSS idle, then after wrk on the API
routes and the static bundle plus 50 WebSocket handshakes. Loopback only; every process stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fullstack_probes as probes
import fullstack_targets as targets


def tree_target(name: str, root: Path, workdir: Path) -> targets.Target:
    state = workdir / f"{name}-state.json"
    argv = [sys.executable, "-m", "fluxlit", "serve", targets.APP_TARGET, "--port", "{port}"]
    argv += ["--state-file", str(state)]
    # A tree with the generic packages one level down (supervisor/fluxlit_supervisor/) imports them from its own
    # folders, not from whatever checkout the venv has installed; an older tree finds `supervisor` in its root.
    own = [str(root / part) for part in ("supervisor", "proxy") if (root / part / f"fluxlit_{part}").is_dir()]
    env = {"PYTHONPATH": os.pathsep.join([*own, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)} if own else {}
    return targets.Target(name, argv, "/api/readyz", workdir, cwd=root, env=env)


def summary(samples: dict[str, list[float]], unit: str) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}")
    for name, values in samples.items():
        shown = ", ".join(f"{v:.3f}" for v in values)
        print(f"{name:<16} median {statistics.median(values):.3f} {unit}  [{shown}]")


def cold(trees: dict[str, Path], rounds: int, reference: bool, workdir: Path) -> None:
    makers: dict[str, Callable[[], targets.Target]] = {
        name: (lambda name=name, root=root: tree_target(name, root, workdir)) for name, root in trees.items()
    }
    if reference:
        makers["reference"] = lambda: targets.reference(workdir)
    samples: dict[str, list[float]] = {name: [] for name in makers}
    for index in range(rounds + 1):  # the first round only warms the page cache
        for name in list(makers) if index % 2 == 0 else list(makers)[::-1]:
            target = makers[name]().start()
            try:
                seconds = target.wait_ready()
            finally:
                target.stop()
            if index:
                samples[name].append(seconds)
    summary(samples, "s")


def ws(trees: dict[str, Path], handshakes: int, rounds: int, workdir: Path) -> None:
    running = {name: tree_target(name, root, workdir).start() for name, root in trees.items()}
    try:
        bases: dict[str, str] = {}
        for name, target in running.items():
            target.wait_ready()
            child_port = json.loads((workdir / f"{name}-state.json").read_text())["port"]
            bases[name] = target.base
            bases[f"{name} direct"] = f"http://127.0.0.1:{child_port}"
        for base in bases.values():
            for _ in range(20):
                probes.ws_handshake_ms(base)
        per_round: dict[str, list[float]] = {name: [] for name in bases}
        for _ in range(rounds):
            samples: dict[str, list[float]] = {name: [] for name in bases}
            for index in range(handshakes):
                for name in list(bases) if index % 2 == 0 else list(bases)[::-1]:
                    samples[name].append(probes.ws_handshake_ms(bases[name]))
            for name, values in samples.items():
                per_round[name].append(statistics.median(values))
    finally:
        for target in running.values():
            target.stop()
    summary(per_round, "ms (per-round medians)")


def rss(trees: dict[str, Path], rounds: int, seconds: float, workdir: Path) -> None:
    from fullstack import static_bundle

    loads = [("/api/async", 32), ("/api/sync", 32), ("/api/large", 32), (static_bundle(), 8)]
    samples: dict[str, list[float]] = {f"{name} {when}": [] for name in trees for when in ("idle", "warm")}
    for index in range(rounds):
        for name in list(trees) if index % 2 == 0 else list(trees)[::-1]:
            target = tree_target(name, trees[name], workdir).start()
            try:
                target.wait_ready()
                time.sleep(2)
                samples[f"{name} idle"].append(target.gateway().memory_info().rss / 2**20)
                for path, conns in loads:
                    argv = ["wrk", f"-c{conns}", "-t2", f"-d{seconds:g}s", target.base + path]
                    subprocess.run(argv, capture_output=True, check=True, timeout=seconds + 60)
                for _ in range(50):
                    probes.ws_handshake_ms(target.base)
                time.sleep(1)
                samples[f"{name} warm"].append(target.gateway().memory_info().rss / 2**20)
            finally:
                target.stop()
    summary(samples, "MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metric", choices=["cold", "ws", "rss"])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--handshakes", type=int, default=200, help="per target and round (ws)")
    parser.add_argument("--seconds", type=float, default=2.0, help="each wrk run (rss)")
    parser.add_argument("--reference", action="store_true", help="cold starts of fluxlit 0.13.2 too")
    args = parser.parse_args()
    if args.metric == "rss" and shutil.which("wrk") is None:
        parser.exit(2, "ab_trees.py rss needs wrk for its load: apt-get install wrk (or run the cold and ws metrics)\n")
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    if args.reference:
        targets.ensure_reference_venv()
    with tempfile.TemporaryDirectory() as workdir:
        if args.metric == "cold":
            cold(trees, args.rounds, args.reference, Path(workdir))
        elif args.metric == "ws":
            ws(trees, args.handshakes, args.rounds, Path(workdir))
        else:
            rss(trees, args.rounds, args.seconds, Path(workdir))


if __name__ == "__main__":
    main()
