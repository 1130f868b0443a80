"""``python -m services.gateway``: serve the gateway on LOOKALIKE_HOST:LOOKALIKE_PORT."""

from __future__ import annotations

import sys

from services.gateway.app import create_app
from shared.errors import LookalikeError
from shared.index_holder import GATEWAY, reachable_url
from shared.logging import configure_logging
from shared.settings import settings_or_exit
from shared.vectors import VectorIndex, open_index
from shared.web import serve


def main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level)
    index: VectorIndex | None = None
    if not settings.recommender_url:
        # Opened before serving, so a gateway turned away by the embedded index's holder
        # exits with one line naming it (not a start-up traceback).
        try:
            index = open_index(
                settings.qdrant_url,
                settings.qdrant_path,
                settings.qdrant_api_key,
                role=GATEWAY,
                url=reachable_url(settings.host, settings.port),
            )
        except LookalikeError as exc:
            sys.exit(f"Error: {exc.message}")
    try:
        serve(
            create_app(settings, index=index),
            settings.host,
            settings.port,
            access_log=settings.logs_requests,
            header_timeout_s=settings.header_timeout_s,
        )
    finally:
        if index is not None:
            index.close()


if __name__ == "__main__":
    main()
