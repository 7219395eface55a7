#!/usr/bin/env python3
"""Regenerate the generated sections of docs/*.md from the code (CLI, settings, metrics, doctor checks).

Each generated section sits between `<!-- generated:start NAME -->` and `<!-- generated:end -->` in its page.
`python scripts/gen_docs.py` rewrites them; `python scripts/gen_docs.py --check` exits 1 when a page is stale.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import click

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
START = "<!-- generated:start {name} -->"
END = "<!-- generated:end -->"
_ENV_IN_HELP = re.compile(r"\s*\[env: ([A-Z0-9_]+)\]")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _code(value: object) -> str:
    return f"`{value}`" if value not in ("", None) else ""


# An option given no default: None (or () when repeatable) up to click 8.2, a sentinel since 8.3.
_CLICK_UNSET = getattr(click.core, "UNSET", None)


def _unset(value: object) -> bool:
    return value is None or value == () or (_CLICK_UNSET is not None and value is _CLICK_UNSET)


def _default(value: object) -> str:
    if isinstance(value, tuple):
        value = list(value)
    try:
        text = json.dumps(value)
    except TypeError:  # click's "unset" sentinel
        return "none"
    return "none" if value is None else f"`{text}`"


# ---------------------------------------------------------------- CLI


def gen_cli() -> str:
    from fluxlit.cli.main import main
    from fluxlit.config.settings import DEFAULTS, SETTING_SPECS

    by_env = {spec.env: spec for spec in SETTING_SPECS}
    root_ctx = click.Context(main, info_name="fluxlit")
    out = ["Every command and option of `fluxlit`, read from the click definitions in `fluxlit/cli/main.py`.", ""]
    out += ["| command | what it does |", "|---|---|"]
    names = main.list_commands(root_ctx)
    commands = {}
    for name in names:
        command = main.get_command(root_ctx, name)
        assert command is not None, name
        commands[name] = command
        out.append(f"| [`fluxlit {name}`](#fluxlit-{name}) | {_cell(command.get_short_help_str(limit=200))} |")
    out.append("")
    for name, command in commands.items():
        ctx = click.Context(command, info_name=name, parent=root_ctx)
        usage = " ".join(command.collect_usage_pieces(ctx))
        out += [f"### fluxlit {name}", "", "```text", f"fluxlit {name} {usage}".rstrip(), "```", ""]
        help_text = (command.help or "").replace("\b\n", "")
        paragraphs = [" ".join(line.strip() for line in p.splitlines()) for p in help_text.strip().split("\n\n")]
        out += [p for para in paragraphs for p in (para, "")]
        out += ["| option | type | default | env var | meaning |", "|---|---|---|---|---|"]
        for param in command.params:
            if isinstance(param, click.Argument):
                if param.name == "target":
                    out.append('| `TARGET` (argument) | text | `"app:app"` | `FLUXLIT_APP` | the app to serve |')
                else:
                    shown = param.human_readable_name
                    out.append(f"| `{shown}` (arguments) | text | none | | TARGET, then any `fluxlit serve` option |")
                continue
            assert isinstance(param, click.Option)
            opts = " / ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
            help_ = param.help or ""
            match = _ENV_IN_HELP.search(help_)
            env = match.group(1) if match else ""
            help_ = _ENV_IN_HELP.sub("", help_)
            if param.is_flag and not param.secondary_opts:
                kind = "flag"
            elif param.is_flag:
                kind = "on/off"
            elif isinstance(param.type, click.Choice):
                kind = ", ".join(param.type.choices)
            else:
                kind = param.type.name
            if param.multiple:
                kind += ", repeatable"
            if env and _unset(param.default):
                default = _default(getattr(DEFAULTS, by_env[env].name))
            elif param.is_flag and not param.secondary_opts:
                default = "off"
            else:
                default = _default(param.default)
            out.append(f"| {opts} | {_cell(kind)} | {default} | {_code(env)} | {_cell(help_)} |")
        out.append("")
    out.append(
        "Options tied to a setting take their default from the settings (flags > env > `fluxlit.toml` > app > "
        "defaults); the default shown is the built-in one. `TARGET` defaults to `FLUXLIT_APP`, then the project "
        "file, then `app:app`."
    )
    return "\n".join(out)


# ---------------------------------------------------------------- settings


def gen_settings() -> str:
    from fluxlit.config.settings import DEFAULTS, SETTING_SPECS

    out = ["| setting (`fluxlit.toml` key) | flag | env var | default | meaning |", "|---|---|---|---|---|"]
    for spec in SETTING_SPECS:
        flags = [part for decl in (spec.flag, *spec.aliases) if decl for part in decl.split("/")]
        flag = " / ".join(f"`{f}`" for f in flags) if flags else "—"
        if spec.commands:
            flag += f" ({', '.join(spec.commands)})"
        out.append(
            f"| `{spec.toml_key}` | {flag} | `{spec.env}` | {_default(getattr(DEFAULTS, spec.name))} "
            f"| {_cell(spec.help)}{' (secret: redacted)' if spec.secret else ''} |"
        )
    out += ["", f"{len(SETTING_SPECS)} settings, read from `fluxlit.config.settings.SETTING_SPECS`."]
    return "\n".join(out)


# ---------------------------------------------------------------- metrics


def gen_metrics() -> str:
    from fluxlit.observability.metrics import GatewayMetrics

    metrics = GatewayMetrics()
    rows = []
    for collector in list(metrics.registry._collector_to_names):
        describe = getattr(collector, "describe", None)  # not on the Collector protocol, but on every metric
        families = (list(describe()) if describe else []) or list(collector.collect())
        for family in families:
            labels = getattr(family, "_labelnames", None) or getattr(collector, "_labelnames", ())
            name = family.name + ("_total" if family.type == "counter" else "")
            if family.type == "histogram":
                name += " (`_bucket`, `_sum`, `_count`)"
            rows.append((family.name, name, family.type, labels, family.documentation))
    out = ["| metric | type | labels | help |", "|---|---|---|---|"]
    for _, name, kind, labels, doc in sorted(rows):
        shown = name if "(" not in name else name.replace(" (", "` (", 1)
        shown = f"`{shown}" + ("" if "(" in name else "`")
        out.append(f"| {shown} | {kind} | {', '.join(f'`{x}`' for x in labels) or '—'} | {_cell(doc)} |")
    out += [
        "",
        f"{len(rows)} metric families, read from a fresh `fluxlit.observability.metrics.GatewayMetrics()` registry.",
    ]
    return "\n".join(out)


# ---------------------------------------------------------------- doctor


def gen_doctor() -> str:
    from fluxlit.doctor.registry import describe_checks

    out = ["| check | runs | what it verifies |", "|---|---|---|"]
    for check in describe_checks():
        runs = "with `--url`" if check["live"] else "always (offline)"
        out.append(f"| `{check['name']}` | {runs} | {_cell(check['checks'])} |")
    return "\n".join(out)


# ---------------------------------------------------------------- API reference

API_NAMES = (
    "fluxlit.FluxLit",
    "fluxlit.app.PageRecord",
    "fluxlit.Settings",
    "fluxlit.testing.FluxLitTestClient",
    "fluxlit.streamlit_main_path",
    "fluxlit.client.ApiClient",
    "fluxlit.client.ApiError",
    "fluxlit.pages.di.Depends",
    "fluxlit.pages.di.Header",
    "fluxlit.pages.di.Cookie",
    "fluxlit.deep_links.match_nav_page",
    "fluxlit.deep_links.query_params",
    "fluxlit.gateway.router.build_gateway",
    "fluxlit.runtime.create_unified_app",
    "fluxlit.runtime.create_gateway_app",
)


def _resolve(dotted: str) -> object:
    import importlib

    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _signature(obj: object) -> str:
    import inspect
    import re

    try:
        text = str(inspect.signature(cast(Callable[..., Any], obj)))
    except (TypeError, ValueError):
        return "(...)"
    # Function defaults print with their address; keep the page stable across runs.
    return re.sub(r"<function ([\w.]+) at 0x[0-9a-f]+>", r"\1", text)


def gen_api() -> str:
    """Public names with their signatures and docstrings (methods too, for classes)."""
    import inspect

    out: list[str] = []
    for dotted in API_NAMES:
        obj = _resolve(dotted)
        out += [f"### `{dotted}`", "", "```text", f"{dotted.rpartition('.')[2]}{_signature(obj)}", "```", ""]
        out += [inspect.getdoc(obj) or "(no docstring)", ""]
        if inspect.isclass(obj):
            for name, member in inspect.getmembers(obj):
                if name.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                    continue
                if getattr(member, "__qualname__", "").split(".")[0] != obj.__name__ and not isinstance(
                    member, property
                ):
                    continue  # inherited from a base class
                doc = (inspect.getdoc(member) or "").split("\n\n")[0].replace("\n", " ")
                shown = "" if isinstance(member, property) else _signature(member)
                out.append(f"- `{name}{shown}`" + (f": {doc}" if doc else ""))
            out.append("")
    return "\n".join(out)


GENERATORS: dict[str, tuple[str, Callable[[], str]]] = {
    "api": ("api.md", gen_api),
    "cli": ("cli.md", gen_cli),
    "settings": ("configuration.md", gen_settings),
    "metrics": ("observability.md", gen_metrics),
    "doctor-checks": ("troubleshooting.md", gen_doctor),
}


def render(text: str, name: str, body: str) -> str:
    """`text` with the section NAME replaced by `body`; ValueError when the markers are missing."""
    start = START.format(name=name)
    head, sep, rest = text.partition(start)
    if not sep or END not in rest:
        raise ValueError(f"missing '{start}' ... '{END}' markers")
    _, _, tail = rest.partition(END)
    return f"{head}{start}\n{body.rstrip()}\n{END}{tail}"


def expected_pages() -> dict[Path, str]:
    """Every page with generated sections, as it should read now."""
    pages: dict[Path, str] = {}
    for name, (page, generate) in GENERATORS.items():
        path = DOCS / page
        current = pages.get(path, path.read_text(encoding="utf-8"))
        pages[path] = render(current, name, generate())
    return pages


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in expected_pages().items():
        if path.read_text(encoding="utf-8") != text:
            stale.append(path.relative_to(ROOT))
            if not check:
                path.write_text(text, encoding="utf-8")
    if check and stale:
        print(f"stale generated docs: {', '.join(map(str, stale))}; run: python scripts/gen_docs.py", file=sys.stderr)
        return 1
    print(("updated: " + ", ".join(map(str, stale))) if stale and not check else "generated docs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
