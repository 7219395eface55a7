"""Plain Streamlit alone: the bench page with the same title, no FluxLit."""

import streamlit as st

st.title("FluxLit Bench")
st.write("bench page")
