"""The FluxLit app object: a FastAPI app for `/api` plus a registry of Streamlit pages."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI

from fluxlit.asgi_types import ASGIApp, Receive, Scope, Send
from fluxlit.config.settings import Settings
from fluxlit.deep_links import PublicUrls
from fluxlit.health import add_health_routes

# PageRecord is still importable from here, where it lived before page_records.py
from fluxlit.page_records import PageHandler, PageRegistry, normalize_page_path
from fluxlit.page_records import PageRecord as PageRecord

HandlerT = TypeVar("HandlerT", bound=PageHandler)


class FluxLit:
    """A FastAPI app (``app.api``) served under the API prefix and Streamlit pages (``@app.page``) at the root.

    ``app.api`` answers ``/healthz`` and ``/readyz`` (outside its OpenAPI schema) unless the user routes them.

    The instance is an ASGI app too: ``uvicorn app:app`` serves the gateway, and the server's lifespan starts the
    supervised Streamlit child (docs/architecture.md, "Unified ASGI: `uvicorn app:app`").

    ``settings`` given here are the app's own defaults; ``fluxlit.toml``, ``FLUXLIT_*`` env vars and CLI flags
    still override them when the app is served.
    """

    def __init__(
        self,
        title: str | None = None,
        *,
        settings: Settings | None = None,
        fastapi_kwargs: Mapping[str, Any] | None = None,
        streamlit_run_args: Sequence[str] = (),
        streamlit_page_config: Mapping[str, Any] | None = None,
        trust_proxy: bool = False,
    ) -> None:
        self.settings = settings
        self.title = title or (settings.title if settings else "FluxLit")
        kwargs = dict(fastapi_kwargs or {})
        kwargs.setdefault("title", self.title)
        self.api: FastAPI = FastAPI(**kwargs)
        # So app.api alone (TestClient(app.api), uvicorn app:app.api) answers probes as the gateway does.
        add_health_routes(self.api)
        self.streamlit_run_args = tuple(streamlit_run_args)
        self.streamlit_page_config = dict(streamlit_page_config or {})
        self._pages = PageRegistry()
        # Whether app.urls may build links from X-Forwarded-Proto/-Host (only behind a proxy that sets them).
        self.trust_proxy = trust_proxy
        self._urls: PublicUrls | None = None
        self._asgi: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The unified ASGI app (``uvicorn app:app``): the gateway, with the Streamlit child run by its lifespan."""
        if self._asgi is None:
            # By name, on first call: the runtime sits layers above the app (it composes it with the gateway), and
            # importing `fluxlit` must stay light for `fluxlit serve`, which starts Streamlit before these imports.
            unified = importlib.import_module("fluxlit.runtime.unified")
            self._asgi = unified.unified_app(self)
        await self._asgi(scope, receive, send)

    def page(
        self,
        path: str,
        *,
        title: str | None = None,
        icon: str | None = None,
        tags: Sequence[str] = (),
    ) -> Callable[[HandlerT], HandlerT]:
        """Register a Streamlit page; the handler is called as ``handler(st, client, ...)`` on each run."""
        normalized = normalize_page_path(path)

        def register(handler: HandlerT) -> HandlerT:
            doc = (handler.__doc__ or "").strip().splitlines()
            name = getattr(handler, "__name__", None)
            default_title = name.replace("_", " ").title() if isinstance(name, str) else path
            self._pages.add(
                PageRecord(
                    path=normalized,
                    title=title or default_title,
                    handler=handler,
                    icon=icon,
                    tags=tuple(tags),
                    description=doc[0] if doc else "",
                )
            )
            return handler

        return register

    @property
    def pages(self) -> tuple[PageRecord, ...]:
        """Pages in registration order (the sidebar order)."""
        return tuple(self._pages.by_path.values())

    @property
    def urls(self) -> PublicUrls:
        """Public URLs of this app's pages, API, docs and health routes (see fluxlit.deep_links.PublicUrls)."""
        if self._urls is None:
            self._urls = PublicUrls(self)
        return self._urls
