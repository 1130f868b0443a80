"""Process-wide logging set-up, called once by each entry point (never at import)."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic announces its plugins and its context on every schema check (each /readyz) at
    # INFO; shared.db.migrate logs what a migration changes instead.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # One line per HTTP request (every image download) drowns what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
