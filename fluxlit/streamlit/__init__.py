"""The Streamlit side of FluxLit: the bundled entrypoint script lives here."""
