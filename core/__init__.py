"""Domain core: models, settings, reference data, geo and phone helpers, the CLI group."""
