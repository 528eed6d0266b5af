"""Top-level commands: schema, init, demo, --version, and how errors exit."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult

Run = Callable[..., CliResult]


def test_schema_prints_the_canonical_json_schema(run_cli: Run) -> None:
    result = run_cli("schema")
    assert result.code == 0
    schema = json.loads(result.out)
    assert schema["$defs"]["Posting"]["properties"]["amount"]["type"] == "string"
    assert schema["$defs"]["Sale"]["properties"]["type"]["const"] == "sale"


def test_init_writes_a_commented_sample(run_cli: Run, tmp_path: Path) -> None:
    target = tmp_path / "connector.yaml"
    result = run_cli("init", "--path", str(target))
    assert result.code == 0
    text = target.read_text(encoding="utf-8")
    assert "${EVOTOR_TOKEN}" in text
    assert "# What flows where." in text


def test_connector_error_is_one_line_and_exit_2(run_cli: Run, tmp_path: Path) -> None:
    target = tmp_path / "connector.yaml"
    target.write_text("x", encoding="utf-8")
    result = run_cli("init", "--path", str(target))
    assert result.code == 2
    assert result.out == ""
    assert result.err.strip() == f"error: {target} exists; pass --force to overwrite it"
    assert "Traceback" not in result.err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    target = tmp_path / "connector.yaml"
    target.write_text("x", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "connector", "--debug", "init", "--path", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "ConfigError" in done.stderr


def test_usage_error_exits_2(run_cli: Run) -> None:
    assert run_cli("no-such-command").code == 2


def test_demo_exits_0(run_cli: Run) -> None:
    assert run_cli("demo").code == 0


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_console_script_runs(args: list[str]) -> None:
    script = Path(sys.executable).with_name("loyalty-connector")
    done = subprocess.run([str(script), *args], capture_output=True, text=True, check=True)
    assert "loyalty-connector" in done.stdout


def test_init_for_a_running_sandbox_writes_a_config_that_loads(run_cli: Run, tmp_path: Path) -> None:
    from connector.config import load_config
    from connector.sandbox.generator import SandboxOptions
    from connector.sandbox.server import SandboxServer

    with SandboxServer(SandboxOptions(stores=1, days=1)) as server:
        result = run_cli("init", "--sandbox", server.base_url, "--path", str(tmp_path / "connector.yaml"))
    assert result.code == 0, result.err
    config = load_config(tmp_path / "connector.yaml")
    assert set(config.systems) == {"evotor", "onec", "crm"}
    assert config.systems["evotor"].base_url.startswith(server.base_url)
    assert config.state == f"sqlite:///{(tmp_path / 'connector.db').resolve()}"
    assert [route.to for route in config.routes] == ["crm", "onec", "onec"]
    assert config.program is not None


def test_init_for_a_sandbox_that_is_not_there_exits_2(run_cli: Run, tmp_path: Path) -> None:
    result = run_cli("init", "--sandbox", "http://127.0.0.1:9", "--path", str(tmp_path / "connector.yaml"))
    assert result.code == 2
    assert "the sandbox does not answer" in result.err
