"""connector.yaml: env substitution, secrets that never print, errors naming file, key path and line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from connector.config import load_config, parse_duration, write_sample_config
from connector.errors import ConfigError

_SECRETS = {
    "EVOTOR_TOKEN": "evo-secret-123",
    "ONEC_PASSWORD": "onec-secret-456",
    "CRM_API_KEY": "crm-secret-789",
}


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in _SECRETS.items():
        monkeypatch.setenv(name, value)
    return write_sample_config(tmp_path / "connector.yaml")


def test_sample_config_loads_with_secrets_from_the_environment(sample: Path) -> None:
    config = load_config(sample)
    assert set(config.systems) == {"evotor", "onec", "crm"}
    evotor = config.systems["evotor"]
    assert evotor.token is not None
    assert evotor.token.get_secret_value() == "evo-secret-123"
    assert config.systems["onec"].timezone == "Europe/Moscow"
    assert [route.to for route in config.routes] == ["crm", "onec", "onec"]
    assert config.program is not None
    assert config.program.accrual.tiers[1].name == "Gold"
    assert parse_duration(config.schedule["sync"].every or "").total_seconds() == 300


def test_relative_sqlite_state_sits_beside_the_config(sample: Path) -> None:
    assert load_config(sample).state == f"sqlite:///{sample.parent.resolve() / 'connector.db'}"


def test_secrets_never_print(sample: Path) -> None:
    config = load_config(sample)
    text = repr(config) + str(config) + config.model_dump_json()
    for secret in _SECRETS.values():
        assert secret not in text
    assert "**********" in text


def test_missing_environment_variable_names_it_and_the_key(
    sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRM_API_KEY")
    with pytest.raises(
        ConfigError, match=r"systems\.crm\.api_key: environment variable CRM_API_KEY is not set"
    ):
        load_config(sample)


def test_env_default_and_literal_dollar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LC_TEST_URL", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text(
        "systems:\n  evotor: {adapter: evotor, base_url: '${LC_TEST_URL:-http://localhost:1}', "
        "mapping: 'a$${b}'}\n",
        encoding="utf-8",
    )
    evotor = load_config(path).systems["evotor"]
    assert evotor.base_url == "http://localhost:1"
    assert evotor.mapping == "a${b}"


def test_validation_error_names_file_key_path_and_line(sample: Path) -> None:
    text = sample.read_text(encoding="utf-8").replace(
        "base_url: http://1c.example.local", "base_url: ftp://1c.example.local"
    )
    sample.write_text(text, encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "ftp://" in row)
    with pytest.raises(ConfigError) as excinfo:
        load_config(sample)
    assert str(excinfo.value) == (
        f"{sample}: systems.onec.base_url (line {line}): must start with http:// or https://"
    )


def test_route_to_an_unknown_system_is_named(sample: Path) -> None:
    text = sample.read_text(encoding="utf-8").replace("to: crm, write: postings", "to: crn, write: postings")
    sample.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"routes\[0\]\.to \(line \d+\): names system 'crn'"):
        load_config(sample)


def test_unknown_key_and_bad_zone_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "timezone: Mars/Olympus\nsystems:\n  x: {adapter: evotor, base_url: 'http://a', tokn: abc}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    message = str(excinfo.value)
    assert "timezone (line 1): 'Mars/Olympus' is not an IANA time zone" in message
    assert "systems.x.tokn (line 3): Extra inputs are not permitted" in message


def test_credentials_in_url_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("systems:\n  x: {adapter: onec, base_url: 'http://user:pw@1c/base'}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must not carry credentials") as excinfo:
        load_config(path)
    assert "pw@" not in str(excinfo.value)


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("systems:\n  x: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml \(line \d\): not valid YAML"):
        load_config(path)


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loyalty-connector init"):
        load_config(tmp_path / "nope.yaml")


def test_schedule_needs_exactly_one_trigger(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("schedule:\n  sync: {every: 5m, cron: '* * * * *'}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"schedule\.sync \(line 2\): give exactly one of every or cron"):
        load_config(path)


def test_write_sample_refuses_to_overwrite(sample: Path) -> None:
    with pytest.raises(ConfigError, match="--force"):
        write_sample_config(sample)
    assert write_sample_config(sample, force=True) == sample


def test_design_flow_style_with_unquoted_env_references_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _SECRETS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "connector.yaml"
    path.write_text(
        "state: sqlite:///connector.db\n"
        "systems:\n"
        "  evotor: {adapter: evotor, base_url: https://api.evotor.ru, token: ${EVOTOR_TOKEN}, mapping: evotor/v2}\n"
        "  onec:   {adapter: onec, base_url: http://1c/ut/odata/standard.odata, user: exchange,"
        " password: ${ONEC_PASSWORD},\n"
        "           timezone: Europe/Moscow, mapping: onec/ut11}\n"
        "  crm:    {adapter: crm, preset: retailcrm, base_url: https://shop.retailcrm.ru, api_key: ${CRM_API_KEY}}\n"
        "reconcile:\n"
        "  - {name: tills-vs-accounting, left: evotor, right: onec, tolerance: 0.01}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.systems["onec"].password is not None
    assert config.systems["onec"].password.get_secret_value() == "onec-secret-456"
    assert config.systems["crm"].api_key is not None
    assert config.systems["crm"].api_key.get_secret_value() == "crm-secret-789"
    assert config.reconcile[0].tolerance == Decimal("0.01")
    assert str(config.reconcile[0].tolerance) == "0.01"  # read from the text, not through a binary float


def test_sync_section_defaults_and_per_system_lookback(tmp_path: Path) -> None:
    path = tmp_path / "connector.yaml"
    path.write_text(
        "sync: {workers: 8, lookback: {onec: 7d}, start: 2026-11-01, backoff: 5s, max_attempts: 3}\n",
        encoding="utf-8",
    )
    settings = load_config(path).sync
    assert settings.workers == 8
    assert settings.lookback_for("onec").days == 7
    assert settings.lookback_for("evotor").days == 2
    assert settings.start is not None
    assert settings.start.isoformat() == "2026-11-01"
    assert settings.max_attempts == 3


def test_sync_section_rejects_a_bad_duration(tmp_path: Path) -> None:
    path = tmp_path / "connector.yaml"
    path.write_text("sync: {backoff: soon}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sync"):
        load_config(path)
