"""Settings: embedded defaults, and the well-known variables that switch to servers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from shared.errors import InvalidSettingError
from shared.settings import (
    Settings,
    env_names,
    load_settings,
    moved_to,
    normalize_database_url,
    relocate,
)

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


SCOPE_SETTINGS = {
    "default_k": ("7", 7),
    "color_weight": ("0.5", 0.5),
    "category_threshold": ("0.6", 0.6),
    "max_categories": ("3", 3),
    "detector_weight": ("0.5", 0.5),
    "neighbour_weight": ("0.7", 0.7),
    "neighbours": ("4", 4),
    "category_votes": ("0", 0),
    "unlikely_class": ("0.2", 0.2),
}


@pytest.mark.parametrize("name", sorted(SCOPE_SETTINGS))
def test_the_gateways_scope_settings_left_the_recommender_group_and_the_old_names_still_work(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    given, expected = SCOPE_SETTINGS[name]
    default = getattr(Settings().gateway, name)
    monkeypatch.setenv(f"LOOKALIKE_RECOMMENDER__{name.upper()}", given)
    with caplog.at_level(logging.WARNING, logger="shared.settings"):
        old = load_settings(Settings)
    assert getattr(old.gateway, name) == expected != default
    assert not hasattr(old.recommender, name)
    assert caplog.records == [], "an old name is not an unknown setting"
    monkeypatch.setenv(f"LOOKALIKE_GATEWAY__{name.upper()}", str(default))
    assert getattr(Settings().gateway, name) == default, "the new name wins"


def test_the_model_choice_has_its_own_embedder_group_and_the_old_names_still_work(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert (Settings().embedder.model, Settings().embedder.classifier) == (
        "street-lite2",
        "street-lite0",
    )
    monkeypatch.setenv("LOOKALIKE_RECOMMENDER__EMBEDDER", "efficientnet_lite0")
    monkeypatch.setenv("LOOKALIKE_RECOMMENDER__CLASSIFIER", "street-lite2")
    with caplog.at_level(logging.WARNING, logger="shared.settings"):
        old = load_settings(Settings)
    assert (old.embedder.model, old.embedder.classifier) == ("efficientnet_lite0", "street-lite2")
    assert caplog.records == []
    monkeypatch.setenv("LOOKALIKE_EMBEDDER__MODEL", "street-lite0")
    assert Settings().embedder.model == "street-lite0"
    assert Settings().embedder_url is None, "LOOKALIKE_EMBEDDER_URL stays its own setting"


def test_scraper_settings_are_a_group_of_settings_under_their_old_names(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LOOKALIKE_SCRAPER__POLL_INTERVAL_S", "10")
    monkeypatch.setenv("LOOKALIKE_SCRAPER__SCRAPY_LOG_LEVEL", "INFO")
    monkeypatch.setenv("LOOKALIKE_SCRAPER__POLL_INTERVL_S", "5")
    with caplog.at_level(logging.WARNING, logger="shared.settings"):
        configured = load_settings(Settings)
    assert configured.scraper.poll_interval_s == 10.0
    assert configured.scraper.scrapy_log_level == "INFO"
    assert configured.scraper.max_concurrent_crawls == 2
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "LOOKALIKE_SCRAPER__POLL_INTERVL_S is not a Lookalike setting" in warning
    assert "did you mean LOOKALIKE_SCRAPER__POLL_INTERVAL_S?" in warning


def test_a_bad_value_under_an_old_name_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOKALIKE_RECOMMENDER__DETECTOR_WEIGHT", "2")
    with pytest.raises(
        InvalidSettingError, match="LOOKALIKE_RECOMMENDER__DETECTOR_WEIGHT=2 is not valid"
    ):
        load_settings(Settings)


def test_old_group_keys_in_a_config_reach_the_new_groups(tmp_path: Path) -> None:
    """Settings given by group (keyword arguments, ``eval-e2e --variant`` JSON) are relocated
    the same way as the environment's."""
    old = {"recommender": {"detector_weight": 0.6, "embedder": "x", "candidates": 50}}
    assert relocate(old) == {
        "recommender": {"candidates": 50},
        "gateway": {"detector_weight": 0.6},
        "embedder": {"model": "x"},
    }
    both = {"recommender": {"unlikely_class": 0.3}, "gateway": {"unlikely_class": 0.05}}
    assert relocate(both)["gateway"] == {"unlikely_class": 0.05}
    configured = Settings(_env_file=None, data_dir=tmp_path, **old)  # type: ignore[arg-type]
    assert configured.gateway.detector_weight == 0.6
    assert (configured.embedder.model, configured.recommender.candidates) == ("x", 50)
    assert moved_to("recommender", "classifier") == ("embedder", "classifier")
    assert moved_to("recommender", "candidates") is None
