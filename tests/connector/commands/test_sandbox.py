"""``loyalty-connector sandbox up`` (a real subprocess) and ``sandbox generate``."""

from __future__ import annotations

import http.server
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from connector.sandbox.generator import SandboxOptions, generate_world

_SMALL = ["--stores", "2", "--days", "2", "--receipts", "15"]


class _Up:
    """A ``sandbox up`` subprocess and what it printed until ready."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "connector", "sandbox", "up", "--port", "0", *args]
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("ready"):
                break
        self.wall = time.monotonic() - self.started
        self.text = "\n".join(self.lines)
        found = re.search(r"(http://127\.0\.0\.1:\d+)/__sandbox/", self.text)
        assert found, self.text + (self.process.stderr.read() if self.process.stderr else "")
        self.base = found.group(1)

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=20)


@pytest.fixture
def up() -> Iterator[Callable[..., _Up]]:
    started: list[_Up] = []

    def start(*args: str) -> _Up:
        started.append(_Up(*args))
        return started[-1]

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
        server.process.communicate(timeout=20)  # reap it and close its pipes


def test_up_prints_every_url_and_credential_answers_and_stops_cleanly_on_sigterm(
    up: Callable[..., _Up],
) -> None:
    server = up()
    base = server.base
    assert f"{base}/1c/ut/odata/standard.odata/  user exchange  password exchange" in server.text
    assert f"{base}/1c/retail/odata/standard.odata/" in server.text
    assert f"{base}/1c/ut/ws/LoyaltyExchange.1cws?wsdl" in server.text
    assert f"{base}/evotor  token sandbox-evotor-token" in server.text
    assert f"{base}/crm  api_key sandbox-crm-key" in server.text
    assert "840 receipts" in server.text
    assert server.wall < 30, f"ready after {server.wall:.1f} s"
    health = requests.get(f"{base}/__sandbox/health", timeout=10).json()
    assert health == {
        "status": "ok",
        "seed": 7,
        "stores": 3,
        "days": 7,
        "start": "2026-11-01",
        "clean": False,
        "receipts": 840,
        "discrepancies": len(generate_world().answer_key),
    }
    assert server.stop(signal.SIGTERM) == 0


def test_the_default_sandbox_is_serving_within_3_s_of_cpu() -> None:
    """The sandbox's own share of ``sandbox up`` (generate, build, listen); CPU time, which a busy machine does
    not stretch. The CLI's imports come on top (``import connector.cli``)."""
    from connector.sandbox.server import SandboxServer

    started = time.process_time()
    with SandboxServer(SandboxOptions()) as server:
        elapsed = time.process_time() - started
        assert requests.get(f"{server.base_url}/__sandbox/health", timeout=10).json()["receipts"] == 840
    assert elapsed < 3, f"{elapsed:.2f} s of CPU"


def test_up_stops_cleanly_on_ctrl_c_and_takes_faults(up: Callable[..., _Up]) -> None:
    server = up(*_SMALL, "--faults", "crm:503=1")
    assert "faults: crm:503=1" in server.text
    crm = requests.get(
        f"{server.base}/crm/api/v5/loyalty/accounts", headers={"X-API-KEY": "sandbox-crm-key"}, timeout=10
    )
    assert crm.status_code == 503
    changed = requests.post(f"{server.base}/__sandbox/faults", json={"spec": ""}, timeout=10)
    assert changed.json()["spec"] == ""
    crm = requests.get(
        f"{server.base}/crm/api/v5/loyalty/accounts", headers={"X-API-KEY": "sandbox-crm-key"}, timeout=10
    )
    assert crm.status_code == 200
    assert server.stop(signal.SIGINT) == 0


def test_up_refuses_bad_input_with_exit_2(run_cli: Callable[..., Any]) -> None:
    result = run_cli("sandbox", "up", "--port", "0", "--faults", "evotor:teapot=1")
    assert result.code == 2
    assert "unknown fault 'teapot'" in result.err
    assert run_cli("sandbox", "up", "--port", "0", "--start", "1st of November").code == 2


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes() for path in directory.rglob("*") if path.is_file()
    }


def test_generate_writes_the_datasets_and_the_answer_key_reproducibly(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    result = run_cli("sandbox", "generate", "--out", str(first), "--seed", "3", *_SMALL)
    assert result.code == 0, result.err
    assert run_cli("sandbox", "generate", "--out", str(second), "--seed", "3", *_SMALL).code == 0
    files = _files(first)
    assert files == _files(second), "same options must give byte-identical files"
    world = generate_world(SandboxOptions(seed=3, stores=2, days=2, receipts=15))
    for name in (
        "evotor/stores.json",
        "crm/accounts.json",
        "crm/operations.json",
        "program.yaml",
        "sandbox.json",
    ):
        assert name in files
    for store in world.stores:
        documents = json.loads(files[f"evotor/documents/{store.id}.json"], parse_float=Decimal)
        assert {d["id"] for d in documents["items"]} == {
            r.id for r in world.receipts if r.store_id == store.id
        }
    sales = json.loads(files["onec/Document_ЧекККМ.json"], parse_float=Decimal)["value"]
    assert {row["Комментарий"] for row in sales} == {
        r.comment for r in world.onec_receipts if r.kind == "sale"
    }
    assert "onec/retail/Document_ЧекККМ.json" in files
    operations = json.loads(files["crm/operations.json"], parse_float=Decimal)["bonusOperations"]
    assert [op["id"] for op in operations] == [op.id for op in world.crm_operations]
    assert json.loads(files["answer_key.json"]) == [entry.as_json() for entry in world.answer_key]
    assert f"{len(world.answer_key)} injected discrepancies" in result.out


def test_generate_clean_writes_no_ledger(run_cli: Callable[..., Any], tmp_path: Path) -> None:
    assert run_cli("sandbox", "generate", "--out", str(tmp_path), "--clean", *_SMALL).code == 0
    assert json.loads((tmp_path / "crm/operations.json").read_text())["bonusOperations"] == []
    assert json.loads((tmp_path / "onec/Document_ЧекККМ.json").read_text())["value"] == []
    kinds = {entry["kind"] for entry in json.loads((tmp_path / "answer_key.json").read_text())}
    assert kinds <= {"redemption_over_limit", "return_without_sale"}


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.headers["Authorization"], body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


def test_up_sends_every_receipt_to_a_webhook(up: Callable[..., _Up]) -> None:
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/api/v2/receipts"
        server = up(
            "--stores", "1", "--days", "1", "--receipts", "4", "--webhook", url, "--webhook-token", "t-1"
        )
        deadline = time.monotonic() + 20
        while len(_Receiver.received) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        world = generate_world(SandboxOptions(stores=1, days=1, receipts=4))
        assert {body["data"]["id"] for _, body in _Receiver.received} == {r.id for r in world.receipts}
        assert {auth for auth, _ in _Receiver.received} == {"Bearer t-1"}
        assert server.stop(signal.SIGTERM) == 0
    finally:
        receiver.shutdown()
        receiver.server_close()
