"""The simulator: a mock Anthropic API (``mock``) and realistic client traffic (``traffic``), for
tests, benchmarks and ``nexus demo``. Imported only by the CLI and the tests.
"""
