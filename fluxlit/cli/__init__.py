"""The `fluxlit` command line: one module per command."""
