"""A registered page and the registry that refuses clashes: what the app, navigation and deep links share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PageHandler = Callable[..., Any]


@dataclass(frozen=True)
class PageRecord:
    """One registered page: where it lives, how the sidebar shows it, and the function that renders it."""

    path: str
    title: str
    handler: PageHandler
    icon: str | None = None
    tags: tuple[str, ...] = ()
    description: str = ""

    @property
    def slug(self) -> str:
        """Streamlit's url_path for the page: "" for the home page, else the path without slashes."""
        return self.path.strip("/").replace("/", "-")


def normalize_page_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"page path {path!r} must start with '/': try '/{str(path).strip('/')}'")
    stripped = path.strip("/")
    return "/" + stripped if stripped else "/"


def _describe(handler: PageHandler) -> str:
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', repr(handler))}"


@dataclass
class PageRegistry:
    """The pages of one app by path; a second page at the same path or slug is refused with both handlers named."""

    by_path: dict[str, PageRecord] = field(default_factory=dict)

    def add(self, record: PageRecord) -> None:
        clash = self.by_path.get(record.path) or next((r for r in self.by_path.values() if r.slug == record.slug), None)
        if clash is not None:
            raise ValueError(
                f"page path {record.path!r} for {_describe(record.handler)} clashes with "
                f"{clash.path!r} already registered by {_describe(clash.handler)}: give one of them another path"
            )
        self.by_path[record.path] = record
