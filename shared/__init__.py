"""What several Lookalike services need: settings, the catalog database API, image
preprocessing, errors and health checks."""
