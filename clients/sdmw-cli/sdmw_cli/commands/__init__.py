"""The ``sdmw`` command groups, one module each; ``sdmw_cli.main`` registers them on the root app."""
