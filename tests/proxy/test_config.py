"""Where the upstream is and the proxy's limits: a mistake is refused when the object is made, with the fix."""

from __future__ import annotations

import pytest
from fluxlit_proxy import ProxyConfig, Upstream


def test_config_mistakes_name_the_bad_value_and_what_to_write_instead() -> None:
    with pytest.raises(ValueError, match=r"path_prefix='api/' must start with '/' and not end with '/': try '/api'"):
        Upstream(port=1, path_prefix="api/")
    with pytest.raises(ValueError, match=r"ws_max_message_bytes=0 must be > 0"):
        ProxyConfig(ws_max_message_bytes=0)
