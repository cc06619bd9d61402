"""One module per `strata` command group; each defines `register(app)`.

Modules here are imported for `strata --help`: import only typer and the standard library at
module level, and everything heavy inside the command function.
"""
