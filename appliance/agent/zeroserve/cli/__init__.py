"""The `zeroserve` command line: one module per verb, one table in `main`."""
