"""`python -m fluxlit` is the `fluxlit` command."""

from fluxlit.cli.main import main

main(prog_name="fluxlit")
