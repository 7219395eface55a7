"""`fluxlit doctor`: checks of the machine, the app and a running instance, each with a fix."""
