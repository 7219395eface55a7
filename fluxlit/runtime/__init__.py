"""The runtime: compose a serve plan (gateway, proxy, Streamlit child) and run it, in one process or several."""
