"""Settings: embedded defaults, and the well-known variables that switch to servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import Settings, env_names, normalize_database_url

pytestmark = pytest.mark.unit


def test_embedded_defaults_live_in_the_data_dir(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert settings.mode == "embedded"
    assert settings.catalog_url == f"sqlite:///{data / 'catalog.sqlite3'}"
    assert settings.broker_url == f"sqla+sqlite:///{data / 'broker.sqlite3'}"
    assert settings.result_backend == f"db+sqlite:///{data / 'results.sqlite3'}"
    assert settings.qdrant_path == data / "qdrant"


def test_well_known_variables_switch_to_servers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db:5432/shop")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("LOOKALIKE_INGEST__BATCH_SIZE", "64")

    configured = Settings()

    assert configured.mode == "server"
    assert configured.catalog_url == "postgresql+psycopg://u:p@db:5432/shop"
    assert configured.broker_url == "redis://cache:6379/0"
    assert configured.result_backend == "redis://cache:6379/0"
    assert configured.qdrant_path is None
    assert configured.ingest.batch_size == 64


def test_celery_broker_url_wins_over_redis_url(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://cache:6379/5")
    assert Settings().broker_url == "redis://cache:6379/5"


def test_dotenv_file_is_read(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOOKALIKE_PORT=9123\nLOOKALIKE_LOG_LEVEL=DEBUG\n")
    configured = Settings()
    assert (configured.port, configured.log_level) == (9123, "DEBUG")


def test_invalid_values_are_refused(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_PORT", "not-a-port")
    with pytest.raises(ValueError, match="port"):
        Settings()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://h/db", "postgresql+psycopg://h/db"),
        ("postgresql://h/db", "postgresql+psycopg://h/db"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_url_spellings(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_recommend_rate_limit_is_a_gateway_setting_with_the_old_name_deprecated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOOKALIKE_RECOMMENDER__RATE_LIMIT_PER_MINUTE", "7")
    assert Settings(_env_file=None, data_dir=tmp_path).gateway.rate_limit_per_minute == 7
    monkeypatch.setenv("LOOKALIKE_GATEWAY__RATE_LIMIT_PER_MINUTE", "9")
    assert Settings(_env_file=None, data_dir=tmp_path).gateway.rate_limit_per_minute == 9
    monkeypatch.delenv("LOOKALIKE_RECOMMENDER__RATE_LIMIT_PER_MINUTE")
    monkeypatch.delenv("LOOKALIKE_GATEWAY__RATE_LIMIT_PER_MINUTE")
    assert Settings(_env_file=None, data_dir=tmp_path).gateway.rate_limit_per_minute == 120


def test_image_limits_moved_to_their_own_group_and_the_old_names_still_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``gateway.max_upload_bytes`` / ``max_image_pixels`` became ``images.*`` (the detector
    and the embedder read them too); the old variables still set them unless the new ones do."""

    monkeypatch.setenv("LOOKALIKE_GATEWAY__MAX_UPLOAD_BYTES", "1000")
    monkeypatch.setenv("LOOKALIKE_GATEWAY__MAX_IMAGE_PIXELS", "2000")
    moved = Settings(_env_file=None)
    assert (moved.images.max_upload_bytes, moved.images.max_image_pixels) == (1000, 2000)
    monkeypatch.setenv("LOOKALIKE_IMAGES__MAX_UPLOAD_BYTES", "3000")
    assert Settings(_env_file=None).images.max_upload_bytes == 3000


def test_framing_is_one_setting_both_sides_read_and_the_old_name_still_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``ingest.detect`` became ``crops.detect`` (the gateway frames product shots by it too);
    ``LOOKALIKE_INGEST__DETECT`` still sets it unless the new name does."""
    assert Settings(_env_file=None).crops.detect is False
    monkeypatch.setenv("LOOKALIKE_INGEST__DETECT", "true")
    assert Settings(_env_file=None).crops.detect is True
    assert "LOOKALIKE_INGEST__DETECT" in env_names(Settings)
    monkeypatch.setenv("LOOKALIKE_CROPS__DETECT", "false")
    assert Settings(_env_file=None).crops.detect is False
