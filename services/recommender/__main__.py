"""``python -m services.recommender``: serve the recommender on LOOKALIKE_HOST:LOOKALIKE_PORT."""

from __future__ import annotations

from services.recommender.api import create_app
from shared.web import run_service


def main() -> None:
    run_service(create_app)


if __name__ == "__main__":
    main()
