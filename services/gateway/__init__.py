"""Public REST API (``POST /recommend`` and friends) and the storefront demo page."""
