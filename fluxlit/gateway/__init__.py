"""The gateway: route each request to the API, an internal endpoint or the Streamlit proxy, and refuse bad ones."""
