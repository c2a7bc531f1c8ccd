"""Use cases: what a route or a CLI command asks for, independent of HTTP."""
