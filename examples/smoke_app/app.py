"""The canonical smoke app: the tiny contract that release, proxy, e2e and load checks share."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request

from fluxlit import FluxLit

SMOKE_MARKER = "fluxlit_smoke_ok"

app = FluxLit(title="FluxLit Smoke")


@app.api.get("/smoke")
def smoke() -> dict[str, str]:
    return {"status": "ok", "marker": SMOKE_MARKER}


@app.api.get("/request-id")
def request_id(request: Request) -> dict[str, str | None]:
    return {"request_id": request.headers.get("x-request-id")}


@app.page("/", title="Home")
def home(st: Any, client: Any) -> None:
    st.title("FluxLit Smoke")
    response = client.get("/smoke")
    response.raise_for_status()  # an error status is returned, not raised: show it rather than a KeyError
    data = response.json()
    st.write(f"API says: {data['marker']}")
    if st.button("Ping"):
        st.write("pong")


@app.api.get("/slow")
async def slow(seconds: float = Query(1.0, allow_inf_nan=False)) -> dict[str, float]:
    """Answer after `seconds` (at most 30): lets chaos checks keep a request in flight."""
    import anyio

    await anyio.sleep(min(max(seconds, 0.0), 30.0))
    return {"slept": seconds}


@app.api.get("/whoami")
def whoami(request: Request) -> dict[str, str | None]:
    """Who the API thinks the client is: shows whether X-Forwarded-* from the proxy in front was trusted."""
    return {"client": request.client.host if request.client else None, "scheme": request.url.scheme}
