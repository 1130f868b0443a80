"""``python -m services.embedder``: serve query-crop embedding on LOOKALIKE_HOST:LOOKALIKE_PORT."""

from __future__ import annotations

import uvicorn

from services.embedder.api import create_app
from shared.logging import configure_logging
from shared.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
