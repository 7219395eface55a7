"""Reading Streamlit's AppTest the same way on every Streamlit release the floors allow."""

from __future__ import annotations

from typing import Any


def url_param(at: Any, key: str) -> str:
    """A query parameter of the AppTest's URL: before Streamlit 1.65 AppTest.query_params holds lists."""
    value = at.query_params[key]
    return str(value[0]) if isinstance(value, list) else str(value)
