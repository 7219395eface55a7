"""Request ids: keep a client's id when it is safe to log, else mint one."""

from __future__ import annotations

import re
import uuid

REQUEST_ID_HEADER = b"x-request-id"
_VALID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


def is_valid_request_id(value: bytes) -> bool:
    """Only short, plain ids pass, so a client cannot forge log lines or inject header bytes."""
    return _VALID.fullmatch(value) is not None


def new_request_id() -> str:
    return uuid.uuid4().hex


def pick_request_id(inbound: bytes | None) -> str:
    if inbound is not None and is_valid_request_id(inbound):
        return inbound.decode("ascii")
    return new_request_id()
