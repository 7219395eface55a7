"""How registered pages map onto st.navigation: url paths, the default page, the page a ``?page=`` link opens."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from fluxlit.page_records import PageRecord

_HOME_NAMES = ("home", "index", "main", "start")


class NavPage(Protocol):
    """What match_nav_page needs of a page (PageRecord satisfies it)."""

    @property
    def path(self) -> str: ...

    @property
    def title(self) -> str: ...


class NavMatch(NamedTuple):
    """The page a deep link selects; unpacks as ``(path, title)``."""

    path: str
    title: str


def _slug(path: str) -> str:
    return path.strip("/").replace("/", "-")


def _first(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable):
        for item in value:
            return str(item)
    return None


def match_nav_page(
    params: Mapping[str, Any], pages: Iterable[NavPage | tuple[str, str]], *, page_key: str = "page"
) -> NavMatch | None:
    """The page ``params[page_key]`` names, or None.

    Tried in this order, each over the pages in sidebar order: exact title, exact path, slug, the path without
    its slashes, then title and slug ignoring case. The first rule that matches any page wins, so a title can
    never be shadowed by another page's slug.
    """
    wanted = _first(params.get(page_key))
    if wanted is None or not wanted.strip():
        return None
    wanted = wanted.strip()
    listed = [NavMatch(*p) if isinstance(p, tuple) else NavMatch(p.path, p.title) for p in pages]
    folded = wanted.casefold()
    rules = (
        lambda p: p.title == wanted,
        lambda p: p.path == wanted,
        lambda p: _slug(p.path) == wanted,
        lambda p: p.path.strip("/") == wanted.strip("/"),
        lambda p: p.title.casefold() == folded,
        lambda p: _slug(p.path).casefold() == folded,
    )
    for rule in rules:
        for page in listed:
            if rule(page):
                return page
    return None


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
