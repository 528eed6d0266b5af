"""The service's web side: the support console and its JSON API (:mod:`connector.web.console`,
:mod:`connector.web.api`), beside the webhook receivers, all served by ``loyalty-connector serve``."""

__all__: list[str] = []
