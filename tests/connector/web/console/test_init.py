"""The console is mounted on the service app that ``loyalty-connector serve`` runs."""

from __future__ import annotations

from connector.store import Store
from connector.web.app import create_app

from ..conftest import TestClient
from ..seed import console_config


def test_the_service_app_serves_the_console_the_api_and_leads_from_the_root(store: Store) -> None:
    app = create_app(console_config(str(store.engine.url)), store=store, process_webhooks=False)
    with TestClient(app) as client:
        assert client.get("/", follow_redirects=False).headers["location"] == "/console/"
        login = client.get("/console/", follow_redirects=False)
        assert login.headers["location"] == "/console/login?next=/console/"
        assert "Войти" in client.get("/console/login").text
        assert client.get("/api/v1/health").json()["status"] == "ok"
        assert client.get("/api/v1/failures").status_code == 401
        assert client.get("/console/static/console.css").headers["content-type"].startswith("text/css")
