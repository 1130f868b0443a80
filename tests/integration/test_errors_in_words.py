"""Bad settings, misspelt setting names and an unmigrated catalog, as a user meets them: a real
process started the way the README starts it, and one line of error, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

LOOKALIKE = [sys.executable, "-c", "from services.cli import main; main()"]


def _run(command: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("LOOKALIKE_")}
    return subprocess.run(
        command,
        env={**clean, "LOOKALIKE_DATA_DIR": str(tmp_path), **env},
        cwd=tmp_path,  # the .env file read is the one there
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value", "accepts"),
    [
        ("LOOKALIKE_PORT", "80OO", "a whole number from 0 to 65535"),
        ("LOOKALIKE_DETECTOR__MIN_SCORE", "high", "a number from 0.0 to 1.0"),
        ("LOOKALIKE_LOG_LEVEL", "loud", "one of DEBUG, INFO, WARNING, ERROR"),
        ("LOOKALIKE_GATEWAY__TRUSTED_PROXIES", "10.0.0.5", "a JSON list"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        [*LOOKALIKE, "status"],
        [*LOOKALIKE, "worker"],
        [sys.executable, "-m", "services.gateway"],
        [sys.executable, "-m", "services.scraper", "sources", "list"],
    ],
    ids=["cli", "worker", "gateway", "scraper"],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    tmp_path: Path, command: list[str], variable: str, value: str, accepts: str
) -> None:
    result = _run(command, tmp_path, **{variable: value})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{variable}={value} is not valid" in lines[0]
    assert accepts in lines[0]


def test_a_scraper_setting_is_checked_too(tmp_path: Path) -> None:
    result = _run(
        [*LOOKALIKE, "crawl", "nowhere"], tmp_path, LOOKALIKE_SCRAPER__HTTP_CACHE="perhaps"
    )
    assert result.returncode == 2, result.stderr
    assert "LOOKALIKE_SCRAPER__HTTP_CACHE=perhaps is not valid: it takes true or false" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_a_misspelt_name_is_warned_once_with_the_closest_real_name(tmp_path: Path) -> None:
    _run([*LOOKALIKE, "migrate"], tmp_path)
    result = _run(
        [*LOOKALIKE, "sources", "list"],
        tmp_path,
        LOOKALIKE_DETECTER__MIN_SCORE="0.5",
        LOOKALIKE_BENCH_KNN_DIM="64",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        "LOOKALIKE_DETECTER__MIN_SCORE is not a Lookalike setting and is ignored; "
        "did you mean LOOKALIKE_DETECTOR__MIN_SCORE?"
    ]
    crawl = _run([*LOOKALIKE, "crawl", "nowhere"], tmp_path, LOOKALIKE_SCRAPER__POLL_INTERVALS="5")
    assert "did you mean LOOKALIKE_SCRAPER__POLL_INTERVAL_S?" in crawl.stderr
    (tmp_path / ".env").write_text("LOOKALIKE_INGEST__BATCHSIZE=8\n")
    from_file = _run([*LOOKALIKE, "sources", "list"], tmp_path)
    assert "did you mean LOOKALIKE_INGEST__BATCH_SIZE?" in from_file.stderr


def test_an_unmigrated_catalog_says_what_to_run(tmp_path: Path) -> None:
    result = _run([*LOOKALIKE, "sources", "list"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: the catalog (sqlite:///{tmp_path}/catalog.sqlite3) is not migrated: "
        "run lookalike migrate"
    ]
