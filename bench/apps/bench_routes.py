"""The bench's API routes, and the same routes on a bare FastAPI app (no FluxLit imported)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI

PAGE_TITLE = "FluxLit Bench"
# ~64 KiB of JSON: 512 records of about 128 bytes each.
LARGE_BODY = [
    {"id": i, "name": f"item-{i:05d}", "tags": ["alpha", "beta", "gamma"], "pad": "x" * 56} for i in range(512)
]

router = APIRouter()


@router.get("/sync")
def sync_route() -> dict[str, str]:
    return {"status": "ok", "kind": "sync"}


@router.get("/async")
async def async_route() -> dict[str, str]:
    return {"status": "ok", "kind": "async"}


@router.get("/large")
async def large_route() -> list[dict[str, Any]]:
    return LARGE_BODY


def build_plain_api() -> FastAPI:
    """The same routes on FastAPI alone, under /api like the gateways serve them."""
    plain = FastAPI(title=PAGE_TITLE)
    plain.include_router(router, prefix="/api")
    return plain
