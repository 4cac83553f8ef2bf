"""parley benchmark: load generator, echo baseline and report (see bench/README.md)."""
