"""How registered pages map onto st.navigation: each page's url_path, which one is default, and deep links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fluxlit.app import PageRecord
from fluxlit.deep_links import match_nav_page

_HOME_NAMES = ("home", "index", "main", "start")


@dataclass(frozen=True)
class NavEntry:
    """One st.Page to build: the record, its stable url_path (Streamlit hashes it) and whether it is default."""

    record: PageRecord
    url_path: str
    default: bool

    @property
    def public_path(self) -> str:
        """The path Streamlit serves this page at: "" for the default page, else its url_path."""
        return "" if self.default else self.url_path


def _home_url_path(pages: Sequence[PageRecord]) -> str:
    # The "/" page needs a non-empty url_path whenever it is not the default page (a deep link chose
    # another); it must not collide with another page's slug.
    taken = {p.slug for p in pages}
    for name in _HOME_NAMES:
        if name not in taken:
            return name
    return "fluxlit-home"


def nav_entries(
    pages: Sequence[PageRecord], params: Mapping[str, Any] | None = None, *, page_key: str = "page"
) -> list[NavEntry]:
    """The pages in sidebar order; the one ``params[page_key]`` names becomes default, else the first.

    Making the deep-linked page the default (instead of switching to it) keeps the URL, and every other query
    parameter on it such as an invite token, exactly as the user received it.
    """
    if not pages:
        return []
    match = match_nav_page(params or {}, pages, page_key=page_key)
    chosen = match.path if match is not None else pages[0].path
    home = _home_url_path(pages)
    return [NavEntry(p, p.slug or home, p.path == chosen) for p in pages]


def public_page_path(pages: Sequence[PageRecord], path: str) -> str:
    """The URL path (relative to the app base, no leading slash) of the page at ``path`` with no deep link."""
    normalized = "/" + path.strip("/")
    for entry in nav_entries(pages):
        if entry.record.path == normalized:
            return entry.public_path
    return normalized.strip("/")
