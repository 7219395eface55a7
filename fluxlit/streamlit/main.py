"""Bundled Streamlit entrypoint: imports FLUXLIT_APP and renders its registered pages with st.navigation.

Streamlit re-executes this file on every run, so it stays a two-line shim: the logic lives in an ordinary,
importable (and so cached, typed and tested) module.
"""

from __future__ import annotations

import streamlit as st

from fluxlit.streamlit.shell import run

run(st)
