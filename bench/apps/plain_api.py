"""Plain FastAPI alone, for `hypercorn plain_api:app` run from this directory."""

from bench_routes import build_plain_api

app = build_plain_api()
