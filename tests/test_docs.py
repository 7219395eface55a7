"""The documentation site: generated pages match the code, every Python example runs, the strict build fails on
a page outside the nav or a broken link."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ILLUSTRATIVE = "<!-- illustrative -->"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_blocks() -> list[tuple[str, int, str, bool]]:
    """(page, line, code, illustrative) for every ```python block under docs/."""
    blocks = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            before = text[: match.start()].rstrip()
            blocks.append(
                (
                    str(page.relative_to(DOCS)),
                    text.count("\n", 0, match.start()) + 1,
                    match.group(1),
                    before.endswith(ILLUSTRATIVE),
                )
            )
    return blocks


GEN = _gen_docs()
BLOCKS = python_blocks()


@pytest.mark.parametrize("name", sorted(GEN.GENERATORS))
def test_generated_section_is_up_to_date(name: str) -> None:
    page, generate = GEN.GENERATORS[name]
    path = DOCS / page
    current = path.read_text(encoding="utf-8")
    expected = GEN.render(current, name, generate())
    assert current == expected, (
        f"docs/{page}: the generated '{name}' section is stale (a flag, setting, metric or doctor check changed); "
        "run python scripts/gen_docs.py and commit the result"
    )


def test_render_replaces_only_between_the_markers() -> None:
    text = "a\n<!-- generated:start x -->\nold\n<!-- generated:end -->\nb\n"
    assert GEN.render(text, "x", "new") == "a\n<!-- generated:start x -->\nnew\n<!-- generated:end -->\nb\n"
    with pytest.raises(ValueError, match="markers"):
        GEN.render("no markers", "x", "new")


def test_generated_pages_cover_every_setting_command_metric_and_check() -> None:
    from fluxlit.cli.main import main
    from fluxlit.config.settings import SETTING_SPECS
    from fluxlit.doctor.registry import describe_checks

    cli = (DOCS / "cli.md").read_text(encoding="utf-8")
    for name in main.list_commands(None):  # type: ignore[arg-type]
        assert f"### fluxlit {name}" in cli
    configuration = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for spec in SETTING_SPECS:
        assert f"`{spec.env}`" in configuration
        assert f"`{spec.toml_key}`" in configuration
    troubleshooting = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    for check in describe_checks():
        assert f"`{check['name']}`" in troubleshooting
    observability = (DOCS / "observability.md").read_text(encoding="utf-8")
    assert "`fluxlit_gateway_requests_total`" in observability


def test_docs_have_python_examples() -> None:
    assert sum(not illustrative for *_, illustrative in BLOCKS) >= 5


@pytest.mark.parametrize(
    ("page", "line", "code", "illustrative"), BLOCKS, ids=[f"{page}:{line}" for page, line, _, _ in BLOCKS]
)
def test_python_block_runs(page: str, line: int, code: str, illustrative: bool, tmp_path: Path) -> None:
    """Blocks with test functions run under pytest; others run as scripts. One marked `<!-- illustrative -->` needs
    what a test cannot give it (the reader's own app, a signed-in session): it must still be valid Python."""
    if illustrative:
        compile(code, f"docs/{page}:{line}", "exec")  # a SyntaxError names the page and line
        return
    stem = re.sub(r"\W", "_", f"test_doc_{page}_{line}")
    source = tmp_path / f"{stem}.py"
    source.write_text(code, encoding="utf-8")
    if re.search(r"^def test_", code, re.M):
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(source)]
    else:
        argv = [sys.executable, str(source)]
    # A block that runs AppTest starts Python, Streamlit and pytest in a subprocess (measured by coverage under the
    # gate): 40 s of that was seen to stretch past 120 s on a 2-core machine running other suites.
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"the python block at docs/{page}:{line} does not run (fix it, or mark it {ILLUSTRATIVE} on the line "
        f"before the fence):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip('mkdocs is not installed: pip install -e ".[docs]"')
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-4000:]}"
    assert (tmp_path / "site" / "index.html").is_file()


def _build_copy(tmp_path: Path, break_it: Callable[[Path], None]) -> subprocess.CompletedProcess[str]:
    """mkdocs build --strict of a copy of the site after ``break_it(docs_dir)`` changed it."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(DOCS, tmp_path / "docs")
    break_it(tmp_path / "docs")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_page_left_out_of_the_nav_fails_the_strict_build(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason='mkdocs is not installed: pip install -e ".[docs]"')
    result = _build_copy(tmp_path, lambda docs: (docs / "orphan.md").write_text("# Orphan\n", encoding="utf-8"))
    assert result.returncode != 0
    assert (
        'WARNING -  The following pages exist in the docs directory, but are not included in the "nav"' in result.stderr
    )
    assert "  - orphan.md" in result.stderr


def test_broken_and_unresolvable_links_fail_the_strict_build(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason='mkdocs is not installed: pip install -e ".[docs]"')
    links = [
        "[a](missing.md)",
        "[b](testing.md#no-such-anchor)",
        "[c](#no-such-anchor)",
        "[d](/testing.md)",
        "[e](testing/)",
    ]

    def add_links(docs: Path) -> None:
        with (docs / "index.md").open("a", encoding="utf-8") as page:
            page.write("\n" + "\n".join(links) + "\n")

    result = _build_copy(tmp_path, add_links)
    assert result.returncode != 0
    # Each must be a warning (strict mode fails on those), not one of the info lines mkdocs also prints.
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    for expected in (
        "contains a link 'missing.md', but the target is not found",
        "the doc 'testing.md' does not contain an anchor '#no-such-anchor'",
        "contains a link '#no-such-anchor', but there is no such anchor on this page",
        "contains an absolute link '/testing.md'",
        "contains an unrecognized relative link 'testing/'",
    ):
        assert any(expected in line for line in warnings), f"not a warning: {expected}\n{result.stderr}"


_MODULE_PATH = re.compile(r"`((?:fluxlit|fluxlit_supervisor|fluxlit_proxy)/[\w/]+\.py)`")
_HOMES = {"fluxlit": ROOT, "fluxlit_supervisor": ROOT / "supervisor", "fluxlit_proxy": ROOT / "proxy"}


def test_every_module_the_architecture_page_names_exists() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    named = _MODULE_PATH.findall(text)
    assert len(named) >= 20  # the request's route names its modules; a rewrite that drops them fails here
    missing = [path for path in named if not (_HOMES[path.split("/", 1)[0]] / path).is_file()]
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_the_architecture_page_lists_every_fluxlit_sub_package() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    packages = sorted(p.parent.name for p in (ROOT / "fluxlit").glob("*/__init__.py"))
    assert packages, "no sub-packages found"
    assert [name for name in packages if f"`{name}/`" not in text] == []


_DOC_SECTION = re.compile(r'(docs/[\w-]+\.md), "([^"]+)"')


def test_every_docs_section_the_source_points_to_exists() -> None:
    sources = [p for package in ("fluxlit", "supervisor", "proxy") for p in (ROOT / package).rglob("*.py")]
    pointers = [(src, doc, heading) for src in sources for doc, heading in _DOC_SECTION.findall(src.read_text())]
    assert pointers  # the gateway points to its request path; a regex that finds nothing checks nothing
    dangling = [
        f"{src.relative_to(ROOT)} -> {doc} {heading!r}"
        for src, doc, heading in pointers
        if not re.search(rf"^#+ {re.escape(heading)}$", (ROOT / doc).read_text(encoding="utf-8"), re.M)
    ]
    assert not dangling, f"source comments point to headings that do not exist: {dangling}"


INVENTORY = DOCS / "reference" / "fluxlit-0.13-inventory.md"
_SPAN = re.compile(r"`([^`\n]+)`")
_ENV = re.compile(r"\bFLUXLIT_[A-Z0-9_]*[A-Z0-9]")
# `FLUXLIT_GATEWAY_HOST` / `_PORT`: a fragment shares the family (first two words) of the last full name before it.
_ENV_FRAGMENT = re.compile(r"(?:^|[\s/])_([A-Z0-9][A-Z0-9_]*[A-Z0-9])\b")
# Streamlit's own `--server.port` style options are not ours to map.
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])(?![\w.-])")
_IDENT = re.compile(r"[A-Za-z_]\w*(?:\.\w+)*")
_STATUSES = ("same", "different", "not provided")


def inventory_names(text: str) -> dict[str, dict[str, str]]:
    """The names the inventory's feature tables and limitations (sections 1 and 2) put in backticks, by kind, each
    with the regex a page mentioning it matches: env vars, flags, verbs and identifiers (a signature's leading name,
    or each item of a comma list)."""
    body = text[text.index("## 1.") : text.index("## 3.")]
    names: dict[str, dict[str, str]] = {"env var": {}, "flag": {}, "verb": {}, "identifier": {}}
    for line in body.splitlines():
        if line.startswith("| CLI | `"):  # the CLI table's command column: `dev [target]`, `pages manifest`, ...
            for verb in re.findall(r"`([a-z]+)[^`]*`", line.split(" | ")[1]):
                names["verb"][f"fluxlit {verb}"] = rf"fluxlit {verb}\b"
        anchor = None
        for span in _SPAN.findall(line):
            for env in _ENV.findall(span):
                names["env var"][env] = rf"(?<![A-Z0-9_]){env}(?![A-Z0-9_])"
                anchor = env
            for fragment in _ENV_FRAGMENT.findall(span):
                if anchor is not None:
                    family = "_".join(anchor.split("_")[:2])
                    pattern = rf"(?<![A-Z0-9_]){family}_(?:[A-Z0-9]+_)*{fragment}(?![A-Z0-9_])"
                    names["env var"][f"{family}_..._{fragment}"] = pattern
            for flag in _FLAG.findall(span):
                names["flag"][flag] = rf"(?<![\w-]){flag}(?![\w-])"
            for part in [span] if "(" in span else re.split(r"[,{}\[\]]", span):
                part = part.strip().lstrip(".")
                match = _IDENT.match(part)
                whole = match is not None and (match.end() == len(part) or part[match.end()] == "(")
                if match is not None and whole and not match.group(0).startswith(("FLUXLIT_", "_")):
                    names["identifier"][match.group(0)] = rf"(?<!\w){re.escape(match.group(0))}(?!\w)"
    return names


def test_the_migration_page_marks_every_name_of_the_0_13_inventory_and_its_tally_matches_the_rows() -> None:
    page = (DOCS / "migration.md").read_text(encoding="utf-8")
    names = inventory_names(INVENTORY.read_text(encoding="utf-8"))
    # A parser that finds little checks little: the 0.13 inventory has about 60 env vars, 30 flags, 9 verbs, 300 names.
    assert [len(names[kind]) for kind in ("env var", "flag", "verb", "identifier")] >= [60, 25, 9, 250]
    absent = {
        kind: sorted(n for n, pattern in found.items() if not re.search(pattern, page)) for kind, found in names.items()
    }
    assert not any(absent.values()), (
        "docs/migration.md does not mention these names of docs/reference/fluxlit-0.13-inventory.md "
        f"(add each to the row of its area, marked same / different / not provided): {absent}"
    )
    rows = [
        line.split(" | ") for line in page.splitlines() if line.startswith("| ") and not line.startswith("| 0.13 |")
    ]
    statuses = [cells[1].strip() for cells in rows]
    marks = {f"**{status}**" for status in _STATUSES}
    unmarked = [" | ".join(cells)[:80] for cells, status in zip(rows, statuses, strict=True) if status not in marks]
    assert not unmarked, f"docs/migration.md rows without **same**, **different** or **not provided**: {unmarked}"
    counts = [statuses.count(f"**{status}**") for status in _STATUSES]
    expected = f"Tally: {counts[0]} same / {counts[1]} different / {counts[2]} not provided ({len(rows)} rows)"
    assert expected in page, f"docs/migration.md: the tally line should read {expected!r}"
