"""Shared test configuration: the CLI runner used by command tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from connector.cli import main

pytest_plugins = ["tests.sandbox_fixture"]  # the `sandbox` and `sandbox_factory` fixtures


@dataclass
class CliResult:
    """What a CLI invocation printed and how it exited."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``loyalty-connector`` in-process through its real entry point (``connector.cli.main``)."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
