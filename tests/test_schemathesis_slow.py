"""Schema-driven fuzzing of the smoke app's API through a live gateway: no generated request gets a 5xx.

Every operation in the app's OpenAPI document is called with schemathesis-generated parameters (valid and invalid)
through a real `fluxlit serve`, so the gateway's routing, request ids and header handling are on the path too.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests._live import LiveServer

schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (a dev dependency)")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

pytestmark = pytest.mark.slow

# The smoke app's operations, and whether they take parameters (only those get invalid ones generated: there is
# nothing to make invalid otherwise). /slow sleeps for its argument (clamped to 30 s), so only short sleeps are sent.
OPERATIONS = {"GET /smoke": False, "GET /request-id": False, "GET /whoami": False, "GET /slow": True}
CASES = [
    pytest.param(label, mode, id=f"{mode.value}-{label}")
    for label, takes_parameters in OPERATIONS.items()
    for mode in GenerationMode
    if takes_parameters or mode is not GenerationMode.NEGATIVE
]
LONGEST_SLEEP_S = 0.2


@pytest.fixture(scope="module")
def api_schema(live: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{live.base}/api/openapi.json")


def short_enough(case: Any) -> bool:
    """False for a case that would make /slow sleep longer than LONGEST_SLEEP_S (numbers, or text that parses)."""
    value = (case.query or {}).get("seconds")
    for item in value if isinstance(value, list) else [value]:
        try:
            seconds = float(str(item).strip())
        except ValueError:
            continue  # not a number: answered 422 at once
        if seconds > LONGEST_SLEEP_S:  # NaN compares False: it goes through
            return False
    return True


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_no_generated_request_gets_a_server_error(api_schema: Any, live: LiveServer, label: str, mode: Any) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the schema"
    takes_parameters = bool(operation.query or operation.path_parameters)
    assert takes_parameters is OPERATIONS[label], f"{label}: update OPERATIONS, the schema changed"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Any) -> None:
        assume(short_enough(case))
        response = case.call(base_url=f"{live.base}/api", timeout=10)
        case.validate_response(response, checks=[not_a_server_error])
        assert response.headers.get("x-request-id")

    run()


@pytest.mark.parametrize("value", ["nan", "NaN"])
def test_non_finite_sleep_is_refused_not_a_server_error(live: LiveServer, value: str) -> None:
    response = live.get(f"/api/slow?seconds={value}", timeout=10)
    assert response.status_code == 422


def test_the_gateway_serves_the_schema_with_the_api_prefix_as_server(live: LiveServer) -> None:
    document = live.get("/api/openapi.json").json()
    assert document["servers"] == [{"url": "/api"}]
    assert {"/smoke", "/request-id", "/whoami"} <= set(document["paths"])
