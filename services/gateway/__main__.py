"""``python -m services.gateway``: serve the gateway on LOOKALIKE_HOST:LOOKALIKE_PORT."""

from __future__ import annotations

import uvicorn

from services.gateway.app import create_app
from shared.logging import configure_logging
from shared.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    app = create_app(settings)  # applies gateway.trusted_proxies itself
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, proxy_headers=False)


if __name__ == "__main__":
    main()
