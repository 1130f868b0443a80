"""The package metadata that setuptools reads at every install: no deprecated forms (each
printed a screenful of warnings before the project's first line)."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import pytest
from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

pytestmark = pytest.mark.unit

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def test_the_license_is_an_spdx_expression() -> None:
    project = tomllib.loads(PYPROJECT.read_text())
    assert project["project"]["license"] == "Apache-2.0"
    # SPDX license strings are read by setuptools 77 and later.
    assert "setuptools>=77" in project["build-system"]["requires"]


def test_setuptools_reads_the_metadata_without_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), str(PYPROJECT))
    assert [str(warning.message).splitlines()[0] for warning in caught] == []
    assert dist.metadata.license_expression == "Apache-2.0"
