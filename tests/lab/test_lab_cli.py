"""The lab's commands are on the one ``lookalike`` command line (entry-point group
``lookalike.commands``), and a ``lookalike`` without the lab (a service image) still works."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from lab.cli import commands
from services.cli import main

pytestmark = pytest.mark.unit

LAB = {
    "train",
    "eval",
    "train-bridge",
    "train-detector",
    "eval-detector",
    "eval-e2e",
    "eval-sessions",
    "eval-text",
    "bench",
}


def test_lookalike_lists_the_lab_commands() -> None:
    assert {command.name for command in commands()} == LAB
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.splitlines() if line.startswith("  ")}
    assert listed >= LAB


def test_lookalike_without_the_lab_keeps_the_service_commands() -> None:
    code = (
        "import sys; sys.modules['lab'] = None\n"  # what an image without lab/ sees
        "from services.cli import main\n"
        "print(' '.join(sorted(main.commands)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    assert not LAB & set(out)
    assert {"run", "worker", "migrate", "status", "crawl"} <= set(out)
