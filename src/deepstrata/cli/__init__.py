"""The `strata` command line: a thin layer over `deepstrata.api`."""
