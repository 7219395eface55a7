"""UpstreamState serialisation and the StateHub's publish/subscribe and control relay."""

from __future__ import annotations

import json

import pytest
from fluxlit_supervisor import StateHub, UpstreamState

FULL = UpstreamState(
    state="ready", host="127.0.0.1", port=8501, pid=4242, generation=3, since=1700000000.5, detail="ok"
)


@pytest.mark.parametrize(
    "state",
    [
        FULL,
        UpstreamState(state="starting"),
        UpstreamState(state="failed", detail="exit code 3; stderr: boom \u2603"),
        UpstreamState(state="restarting", host="::1", port=1, generation=9),
    ],
)
def test_json_round_trip(state: UpstreamState) -> None:
    assert UpstreamState.from_json(state.to_json()) == state


def test_json_carries_the_url_for_plain_readers() -> None:
    assert json.loads(FULL.to_json())["url"] == "http://127.0.0.1:8501"


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8501, "http://127.0.0.1:8501"),
        ("::1", 8501, "http://[::1]:8501"),
        (None, 8501, "http://127.0.0.1:8501"),
        ("127.0.0.1", None, None),
    ],
)
def test_url(host: str | None, port: int | None, url: str | None) -> None:
    assert UpstreamState(state="ready", host=host, port=port).url == url


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"state": "dancing"}', "'state'"),
        ('{"port": 80}', "'state'"),
        ('{"state": "ready", "port": "80"}', "'port'"),
        ('{"state": "ready", "port": true}', "'port'"),
        ('{"state": "ready", "port": 70000}', "outside"),
        ('{"state": "ready", "generation": 1.5}', "'generation'"),
        ('{"state": "ready", "detail": 3}', "'detail'"),
    ],
)
def test_from_json_rejects_bad_input_naming_the_field(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        UpstreamState.from_json(text)


def test_from_json_ignores_unknown_keys() -> None:
    assert UpstreamState.from_json('{"state": "stopped", "future_field": 1}') == UpstreamState(state="stopped")


def test_publish_replaces_current_and_notifies_every_subscriber_in_order() -> None:
    hub = StateHub()
    seen: list[tuple[str, str]] = []
    hub.subscribe(lambda s: seen.append(("a", s.state)))
    hub.subscribe(lambda s: seen.append(("b", s.state)))
    hub.publish(FULL)
    assert hub.current is FULL
    assert seen == [("a", "ready"), ("b", "ready")]


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    hub = StateHub()
    seen: list[str] = []

    def broken(state: UpstreamState) -> None:
        raise RuntimeError("subscriber bug")

    hub.subscribe(broken)
    hub.subscribe(lambda s: seen.append(s.state))
    hub.publish(FULL)
    assert seen == ["ready"]


def test_unsubscribed_callbacks_are_not_called() -> None:
    hub = StateHub()
    seen: list[str] = []
    hub.subscribe(seen.append)  # type: ignore[arg-type]
    hub.unsubscribe(seen.append)  # type: ignore[arg-type]
    hub.unsubscribe(print)  # type: ignore[arg-type]
    hub.publish(FULL)
    assert seen == []


class FakeControl:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def request_stop(self) -> None:
        self.calls.append("stop")

    def request_restart(self) -> None:
        self.calls.append("restart")


def test_requests_are_relayed_to_the_attached_run() -> None:
    hub = StateHub()
    control = FakeControl()
    assert hub._attach(control) is False
    hub.request_restart()
    hub.request_stop()
    assert control.calls == ["restart", "stop"]


def test_a_stop_requested_before_the_run_is_remembered_once() -> None:
    hub = StateHub()
    hub.request_restart()
    hub.request_stop()
    assert hub._attach(FakeControl()) is True
    hub._detach()
    assert hub._attach(FakeControl()) is False


def test_stopping_flips_once_a_stop_begins_and_resets_for_a_new_run() -> None:
    hub = StateHub()
    assert hub.stopping is False
    hub._set_stopping()
    assert hub.stopping is True
    hub._attach(FakeControl())
    assert hub.stopping is False
