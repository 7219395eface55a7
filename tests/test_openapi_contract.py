"""The default FluxLit OpenAPI document is a contract: adding a route to it must update the fixture on purpose."""

from __future__ import annotations

import json
from pathlib import Path

from fluxlit import FluxLit, FluxLitTestClient

FIXTURE = Path(__file__).parent / "fixtures" / "openapi_contract_minimal.json"


def test_default_openapi_document_matches_the_contract() -> None:
    document = FluxLitTestClient(FluxLit()).openapi()
    document["info"].pop("version", None)
    expected = json.loads(FIXTURE.read_text())
    assert document == expected, (
        "The default OpenAPI document changed. If intended, regenerate "
        f"{FIXTURE.relative_to(Path.cwd()) if FIXTURE.is_relative_to(Path.cwd()) else FIXTURE}."
    )
