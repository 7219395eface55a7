"""Client WebSockets kept alive and bounded: frame headers, the per-stream watchdog, the process's reassembly budget.

Only `hypercorn_fixes` wires these into hypercorn; the public names are re-exported by `fluxlit_supervisor`.
"""
