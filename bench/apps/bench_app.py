"""The app every full-stack bench target serves, under ours (`fluxlit serve`) and the reference (`fluxlit run`).

Written against the API both FluxLit versions share: ``FluxLit(title=...)`` (keyword), ``app.api`` (a FastAPI
app) and ``@app.page("/")`` with a ``(st, client)`` handler.
"""

from __future__ import annotations

from typing import Any

from bench_routes import PAGE_TITLE, router

from fluxlit import FluxLit

app = FluxLit(title=PAGE_TITLE)
app.api.include_router(router)


@app.page("/", title="Home")
def home(st: Any, client: Any) -> None:
    st.title(PAGE_TITLE)
    st.write("bench page")
