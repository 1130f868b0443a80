"""``python -m services.embedder``: serve query-crop embedding on LOOKALIKE_HOST:LOOKALIKE_PORT."""

from __future__ import annotations

from services.embedder.api import create_app
from shared.logging import configure_logging
from shared.settings import settings_or_exit
from shared.web import serve


def main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level)
    serve(
        create_app(settings),
        settings.host,
        settings.port,
        access_log=settings.logs_requests,
        header_timeout_s=settings.header_timeout_s,
    )


if __name__ == "__main__":
    main()
