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
    # Alembic announces every plugin it loads at INFO; keep migrations to what they change.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # One line per HTTP request (every image download) drowns what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
