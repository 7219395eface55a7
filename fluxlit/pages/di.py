"""Page dependency injection: call ``handler(st, client, ...)`` with Depends, Header, Cookie, Query and overrides."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from fluxlit.app import FluxLit
from fluxlit.client import ApiClient
from fluxlit.deep_links import PublicUrls, query_params

OVERRIDES_ENV = "FLUXLIT_TEST_PAGE_OVERRIDES"
_log = logging.getLogger("fluxlit.pages")
_warned_outside_tests = False


class Depends:
    """``param=Depends(fn)``: the page gets ``fn(...)``, computed once per script run unless ``use_cache=False``.

    ``fn``'s own parameters are injected the same way (Depends, Header, Cookie, Query, ``st``, ``client``).
    A generator ``fn`` runs its code after ``yield`` once the page has rendered; an ``async def`` ``fn`` is
    awaited on a fresh event loop (a running loop in the script thread is an error, not a hidden thread).
    """

    def __init__(self, dependency: Callable[..., Any], *, use_cache: bool = True) -> None:
        if not callable(dependency):
            raise TypeError(f"Depends() needs a callable, got {dependency!r}")
        self.dependency = dependency
        self.use_cache = use_cache

    def __repr__(self) -> str:
        return f"Depends({getattr(self.dependency, '__qualname__', self.dependency)!r})"


class _Source:
    """A value read from the browser's initial request or URL; ``default`` when it is absent."""

    kind = "value"

    def __init__(self, name: str | None = None, *, default: Any = None) -> None:
        self.name = name
        self.default = default

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Header(_Source):
    """``param=Header("X-Team")``: a header of the browser's request (name defaults to the parameter, ``_``→``-``)."""

    kind = "header"


class Cookie(_Source):
    """``param=Cookie("session")``: a cookie of the browser's request (name defaults to the parameter)."""

    kind = "cookie"


class Query(_Source):
    """``param=Query("tab")``: the first value of a URL query parameter (name defaults to the parameter)."""

    kind = "query"


_MARKERS = (Depends, _Source)


def load_page_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The JSON object in FLUXLIT_TEST_PAGE_OVERRIDES ({} when unset); anything else is a ValueError."""
    global _warned_outside_tests
    env = os.environ if environ is None else environ
    raw = env.get(OVERRIDES_ENV, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{OVERRIDES_ENV} is not valid JSON ({exc}): set it to an object like '{{\"user_id\": 1}}'"
        ) from exc
    if not isinstance(value, dict):
        raise ValueError(f"{OVERRIDES_ENV} must be a JSON object of parameter names to values, got {raw[:60]!r}")
    if env.get("FLUXLIT_TESTS") != "1" and not _warned_outside_tests:
        _warned_outside_tests = True
        _log.warning("%s is set outside tests (FLUXLIT_TESTS!=1): page parameters %s are overridden",
                     OVERRIDES_ENV, sorted(value))  # fmt: skip
    return value


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        # Annotations that cannot be evaluated (forward references) only lose annotation-based injection.
        return inspect.signature(fn)


def _describe(fn: Callable[..., Any]) -> str:
    # Every caller already took fn's signature, so this one cannot fail.
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{name}{inspect.signature(fn)}"


class _Resolver:
    """Resolves one script run's parameters; holds its Depends cache and the teardown of generator deps."""

    def __init__(self, st: Any, client: ApiClient, app: Any, stack: contextlib.ExitStack) -> None:
        self.st = st
        self.client = client
        self.app = app
        self.stack = stack
        self.cache: dict[Callable[..., Any], Any] = {}
        self.resolving: list[Callable[..., Any]] = []

    def kwargs_for(self, fn: Callable[..., Any]) -> tuple[list[Any], dict[str, Any]]:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for param in _signature(fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            value = self.resolve(param, fn)
            if param.kind is param.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[param.name] = value
        return args, kwargs

    def resolve(self, param: inspect.Parameter, owner: Callable[..., Any]) -> Any:
        default = param.default
        if isinstance(default, Depends):
            return self.depend(default)
        if isinstance(default, _Source):
            return self.read(default, param.name)
        annotation = param.annotation
        if annotation is ApiClient or annotation == "ApiClient" or param.name == "client":
            return self.client
        if param.name == "st":
            return self.st
        if self.app is not None:
            if annotation is FluxLit or annotation == "FluxLit":
                return self.app
            if annotation is PublicUrls or annotation == "PublicUrls":
                return self.app.urls
        if default is not inspect.Parameter.empty:
            return default
        raise TypeError(
            f"{_describe(owner)} needs a value for {param.name!r}: give it a default, Depends(...), Header(...), "
            f"Cookie(...) or Query(...), or inject it with page_overrides / {OVERRIDES_ENV}"
        )

    def read(self, source: _Source, param_name: str) -> Any:
        if isinstance(source, Header):
            name = source.name or param_name.replace("_", "-")
            value = self.st.context.headers.get(name)
        elif isinstance(source, Cookie):
            value = self.st.context.cookies.get(source.name or param_name)
        else:
            value = query_params(self.st).get(source.name or param_name)
        # AppTest's stand-in runtime answers cookie lookups with mock objects: only a string is a real value.
        return value if isinstance(value, str) else source.default

    def depend(self, marker: Depends) -> Any:
        dep = marker.dependency
        if marker.use_cache and dep in self.cache:
            return self.cache[dep]
        if dep in self.resolving:
            chain = " -> ".join(getattr(f, "__qualname__", repr(f)) for f in [*self.resolving, dep])
            raise TypeError(f"page dependencies form a cycle: {chain}")
        self.resolving.append(dep)
        try:
            args, kwargs = self.kwargs_for(dep)
            value = self._call(dep, args, kwargs)
        finally:
            self.resolving.pop()
        if marker.use_cache:
            self.cache[dep] = value
        return value

    def _call(self, dep: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
        if inspect.isasyncgenfunction(dep):
            raise TypeError(f"page dependency {_describe(dep)} is an async generator: use a plain generator")
        if inspect.isgeneratorfunction(dep):
            return self.stack.enter_context(contextlib.contextmanager(dep)(*args, **kwargs))
        if inspect.iscoroutinefunction(dep):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(dep(*args, **kwargs))
            raise TypeError(
                f"page dependency {_describe(dep)} is async but an event loop is already running in this thread: "
                "make it a plain function"
            )
        return dep(*args, **kwargs)


def call_page(
    handler: Callable[..., Any],
    st: Any,
    client: ApiClient,
    *,
    app: Any = None,
    overrides: Mapping[str, Any] | None = None,
) -> Any:
    """Call ``handler(st, client, ...)``: its first two positional parameters get ``st`` and ``client``; every
    other parameter an override by its name, else its Depends/Header/Cookie/Query value, else an injectable
    type (ApiClient, FluxLit, PublicUrls), else its default.
    """
    overrides = overrides or {}
    with contextlib.ExitStack() as stack:
        resolver = _Resolver(st, client, app, stack)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for index, param in enumerate(_signature(handler).parameters.values()):
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
            if index < 2 and positional and not isinstance(param.default, _MARKERS):
                value: Any = (st, client)[index]
            elif param.name in overrides:
                value = overrides[param.name]
            else:
                value = resolver.resolve(param, handler)
            if param.kind is param.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[param.name] = value
        return handler(*args, **kwargs)
