"""Page helpers: dependency injection for ``@app.page`` handlers and their mapping onto st.navigation."""

from fluxlit.pages.di import Cookie, Depends, Header, Query, call_page, load_page_overrides

__all__ = ["Cookie", "Depends", "Header", "Query", "call_page", "load_page_overrides"]
