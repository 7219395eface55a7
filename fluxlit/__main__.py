"""`python -m fluxlit` is the `fluxlit` command."""

from fluxlit.cli import main

main(prog_name="fluxlit")
