"""One logging setup for the process: structlog renders our lines and every stdlib logger's (hypercorn, user code)."""

from __future__ import annotations

import importlib
import importlib.abc
import json
import logging
import os
import sys
import threading
import time
from contextvars import ContextVar
from types import ModuleType
from typing import Any, TextIO

# The request being served, for every log line written while it is (cheaper than binding structlog contextvars).
REQUEST_ID: ContextVar[str | None] = ContextVar("fluxlit_request_id", default=None)

_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


# Longest string a log field keeps: clients choose paths, queries and header values, and one 100 KB line
# breaks log shippers (and fills disks) long before it helps a reader. Tracebacks are never cut.
MAX_FIELD_CHARS = 2048


def cap_text(value: str) -> str:
    """`value`, cut to MAX_FIELD_CHARS with a note of how much was dropped."""
    if len(value) <= MAX_FIELD_CHARS:
        return value
    return f"{value[:MAX_FIELD_CHARS]}...[{len(value) - MAX_FIELD_CHARS} more chars]"


def cap_fields(event: dict[str, Any]) -> dict[str, Any]:
    """Every top-level string field of a log line cut by cap_text, in place."""
    for key, value in event.items():
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            event[key] = cap_text(value)
    return event


def _cap_fields(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    return cap_fields(event)


def _add_request_id(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


class _FastJsonLines:
    """Renders the hot-path access line straight to JSON, with the same fields structlog would produce.

    The access log runs once per request; the generic structlog + stdlib pipeline costs ~70 us a line here,
    this ~5 us. Other lines keep the generic pipeline.
    """

    def __init__(self, stream: TextIO, level: int) -> None:
        self.stream = stream
        self.level = level
        self.process_fields: dict[str, Any] = {}
        self.lock = threading.Lock()

    def write(self, event: str, logger_name: str, fields: dict[str, Any]) -> None:
        if self.level > logging.INFO:
            return
        now = time.time()
        line = {
            **fields,
            **self.process_fields,
            "event": event,
            "level": "info",
            "logger": logger_name,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z",
        }
        text = json.dumps(line, default=str)
        if len(text) > MAX_FIELD_CHARS:  # only a line this long can hold a field over the cap: the rest skip it
            text = json.dumps(cap_fields(line), default=str)
        text += "\n"
        with self.lock:  # one write per line: never interleaved with other lines
            self.stream.write(text)
            self.stream.flush()


_fast_lines: _FastJsonLines | None = None

# What `import structlog` pulls in for features JSON lines never use: rich (with pygments and attrs, ~5 MiB and
# ~70 modules) for its console tracebacks, greenlet for its deprecated greenlet-local context.
CONSOLE_ONLY_MODULES = ("rich", "greenlet")


class _HiddenModules(importlib.abc.MetaPathFinder):
    """An import hook that makes importing some top-level packages fail, as if they were not installed."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"{fullname} is hidden while structlog imports", name=fullname)


def import_structlog(console: bool) -> ModuleType:
    """structlog, first imported without rich and greenlet unless the console format wants them.

    Hidden only while structlog imports (it probes for them once, at import): the app may still import them.
    """
    if console or "structlog" in sys.modules:
        return importlib.import_module("structlog")
    hide = _HiddenModules(tuple(name for name in CONSOLE_ONLY_MODULES if name not in sys.modules))
    sys.meta_path.insert(0, hide)
    try:
        return importlib.import_module("structlog")
    finally:
        sys.meta_path.remove(hide)


def fast_info_line(event: str, logger_name: str, fields: dict[str, Any]) -> bool:
    """Write an INFO line through the fast JSON path; False when the console format is in use."""
    if _fast_lines is None:
        return False
    _fast_lines.write(event, logger_name, fields)
    return True


def bind_process_fields(**fields: Any) -> None:
    """Fields on every line of this process (e.g. the replica id)."""
    # structlog is first imported by import_structlog (rich and greenlet hidden, ~5 MiB less); these inner
    # imports only look it up, and keep `import fluxlit.observability.logs` from importing it the ordinary way first.
    import structlog

    structlog.contextvars.bind_contextvars(**fields)
    if _fast_lines is not None:
        _fast_lines.process_fields.update(fields)


def _shared_processors() -> list[Any]:
    # structlog on first use (~75 ms, python -X importtime): the access path writes its lines without it.
    import structlog

    return [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Before the renderers format exc_info: a traceback is kept whole.
        _cap_fields,
    ]


def uses_json(fmt: str, stream: Any) -> bool:
    """`auto` means JSON unless a person is watching: a TTY gets the console renderer."""
    if fmt in ("json", "console"):
        return fmt == "json"
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """JSON lines on a pipe or file, a readable console on a TTY; `fmt` forces either.

    Every line has `timestamp` (RFC 3339, UTC, `Z`), `level`, `logger` and `event`.
    """
    global _fast_lines
    out = stream or sys.stdout
    structlog = import_structlog(console=not uses_json(fmt, out))
    _fast_lines = _FastJsonLines(out, _LEVELS[level]) if uses_json(fmt, out) else None
    if uses_json(fmt, out):
        # Tracebacks become one `exception` string field, so a line stays one JSON object.
        final: list[Any] = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        colors = bool(getattr(out, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ
        final = [structlog.dev.ConsoleRenderer(colors=colors)]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # Our access log replaces hypercorn's; httpx logs full URLs at INFO, query secrets included.
    logging.getLogger("hypercorn.access").disabled = True
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, _LEVELS[level]))
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    import structlog  # on first use, as in _shared_processors

    return structlog.get_logger(name)
