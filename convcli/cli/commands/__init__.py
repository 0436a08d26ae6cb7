"""One module per command group; each builds a spec and hands it to the run layer."""
