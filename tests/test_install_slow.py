"""FluxLit installed from its wheel beside the distributions that own the names `supervisor` and `proxy`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests._live import SMOKE_APP, LiveServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def test_supervisord_and_proxy_py_installed_beside_fluxlit_all_keep_working(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    # FluxLit's own dependencies (Streamlit, FastAPI, ...) come from this test's environment, after the new
    # venv's site-packages: only the three distributions under test are installed for real.
    (site / "fluxlit_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # Built from a copy, so setuptools' build/ directory lands in the test's tmp dir, not in the checkout.
    source = tmp_path / "source"
    for part in ("fluxlit", "supervisor", "proxy"):
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheels, source)
    [wheel] = wheels.glob("fluxlit-*.whl")
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", wheel, "supervisor", "proxy.py")

    where = run(
        python, "-c",
        "import fluxlit, fluxlit_proxy, fluxlit_supervisor, proxy, supervisor.supervisord\n"
        "for m in (fluxlit, fluxlit_proxy, fluxlit_supervisor, proxy, supervisor): print(m.__file__)",
        cwd=tmp_path,
    ).split()  # fmt: skip
    assert all(path.startswith(str(site)) for path in where), where
    assert len(set(where)) == 5
    # Both foreign commands still start: their packages were not overwritten by ours.
    assert run(venv / "bin" / "supervisord", "--version", cwd=tmp_path).strip()[0].isdigit()
    assert run(venv / "bin" / "proxy", "--version", cwd=tmp_path).strip()

    live = LiveServer(tmp_path, target=f"{SMOKE_APP}:app")
    live.argv[0] = str(python)
    with live.running():
        assert live.get("/api/smoke").json()["marker"] == "fluxlit_smoke_ok"
        assert live.get("/").status_code == 200
