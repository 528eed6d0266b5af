"""Create-once documents in a 1C base: the connector's key on the document, looked up before every create.

1C has no idempotency keys, no optimistic locking and no upsert (reference/onec.md §1.6), so the connector
keeps its own key on each document it writes (``Комментарий`` or a configured attribute) and:

1. looks keys up in batches (:meth:`OneCWriter.lookup`: ``substringof`` on the key field, ``or``-ed, 40 keys a
   request, one request per entity set) and remembers the answer, so that writing a key known to be absent
   costs exactly a create and a ``Post`` — the sync benchmark counts requests per write;
2. resolves a create whose outcome is unknown (timeout, 5xx after sending) by a fresh lookup: found, it is
   completed; not found, it is created once more;
3. posts a document an earlier attempt created but left unposted, after checking it is the one meant;
4. compares what 1C stored with what was sent, field by field, before posting: 1C drops unknown fields,
   truncates strings and accepts dangling references without a word. ``verify="response"`` compares with the
   object the create returned (1C answers a create with the object as written, so no extra request);
   ``"reread"`` GETs the document again after posting. A difference is a
   :class:`~connector.errors.FatalRemoteError` naming the set, the ``Ref_Key`` and the fields; the document is
   left unposted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from adapters.base import WriteResult
from adapters.http import outcome_unknown
from adapters.odata import ODataClient, and_, contains, eq, or_
from adapters.onec_payloads import differences
from connector.errors import ConfigError, ConnectorError, FatalRemoteError, RemoteError
from connector.logs import get_logger

__all__ = ["LOOKUP_CHUNK", "Build", "Found", "OneCWriter"]

LOOKUP_CHUNK = 40
"""Keys per lookup request: 40 ``substringof`` terms keep the URL well under the 8 KB IIS/Apache default."""

Build = Callable[[], tuple[str, dict[str, Any]]]
"""Builds the entity set and body of a write; called only when a body is needed."""

_log = get_logger("adapters.onec")


@dataclass(frozen=True)
class Found:
    """A document 1C holds for an idempotency key."""

    entity_set: str
    ref: str
    posted: bool


class OneCWriter:
    """Idempotent create-and-post of documents through one base's OData client.

    Args:
        odata: the base's client.
        key_field: the document attribute holding the connector's key.
        verify: ``response`` (compare with the create's answer) or ``reread`` (GET after posting).
    """

    def __init__(self, odata: ODataClient, *, key_field: str, verify: str = "response") -> None:
        if verify not in ("response", "reread"):
            raise ConfigError(
                f"options.verify: {verify!r} is not response or reread", system=odata.http.system
            )
        self.odata = odata
        self.key_field = key_field
        self.verify: Literal["response", "reread"] = "reread" if verify == "reread" else "response"
        self._index: dict[str, Found | None] = {}  # key → what 1C holds; None: looked up and absent
        self._lock = threading.Lock()

    @property
    def system(self) -> str:
        """The configured system name."""
        return self.odata.http.system

    def forget(self) -> None:
        """Drop what earlier lookups learned (the next write looks its key up again)."""
        with self._lock:
            self._index.clear()

    def lookup(self, entity_sets: Sequence[str], keys: Iterable[str]) -> dict[str, Found]:
        """Documents of ``entity_sets`` carrying any of ``keys``, not marked for deletion (key → found)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Found] = {}
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            flt = and_(or_(*(contains(self.key_field, key) for key in chunk)), eq("DeletionMark", False))
            for entity_set in entity_sets:
                self._collect(entity_set, flt, set(chunk), found)
        with self._lock:
            self._index.update({key: found.get(key) for key in wanted})
        return found

    def _collect(self, entity_set: str, flt: Any, chunk: set[str], found: dict[str, Found]) -> None:
        for row in self.odata.query(
            entity_set, filter=flt, select=(self.key_field, "Posted"), orderby=("Date",)
        ):
            # substringof (ПОДОБНО in 1C), never eq: Комментарий is an unlimited string and 1C refuses to
            # compare those in WHERE (reference §1.7). It also matches longer keys (…:accrual in
            # …:accrual_reversal) and LIKE wildcards (_): only equal keys count.
            comment = str(row.get(self.key_field) or "").strip()
            previous = found.get(comment)
            # of duplicates left by an older tool, the posted one is the write to keep
            if comment in chunk and (previous is None or (row.get("Posted") and not previous.posted)):
                found[comment] = Found(entity_set, str(row["Ref_Key"]), bool(row.get("Posted")))

    def known(self, key: str, entity_sets: Sequence[str]) -> Found | None:
        """What 1C holds for ``key``: remembered from a batch lookup, else looked up now."""
        with self._lock:
            if key in self._index:
                return self._index[key]
        return self.lookup(entity_sets, [key]).get(key)

    def write(self, key: str, entity_sets: Sequence[str], build: Build) -> WriteResult:
        """Create and post the document ``build`` gives, unless ``key`` has one in ``entity_sets`` already.

        Raises:
            FatalRemoteError: 1C stored something other than what was sent (fields named).
            RemoteError: the create or the post failed; retrying this call is safe.
        """
        found = self.known(key, entity_sets)
        if found is not None:
            return self._complete(found, key, build, created=False)
        entity_set, body = self._build(build)
        try:
            stored = self.odata.create(entity_set, body, decode=False)
        except RemoteError as error:
            if not outcome_unknown(error):
                raise
            found = self.lookup(entity_sets, [key]).get(key)
            _log.warning("onec.create_outcome_unknown", system=self.system, key=key, found=found is not None)
            if found is not None:
                return self._complete(found, key, build, created=True)
            stored = self.odata.create(entity_set, body, decode=False)
        ref = str(stored["Ref_Key"])
        self._remember(key, Found(entity_set, ref, posted=False))
        if self.verify == "response":
            self._check(entity_set, ref, body, stored)
        self.odata.post_document(entity_set, ref)
        if self.verify == "reread":
            self._check(entity_set, ref, body, self.odata.get(entity_set, ref, decode=False))
        self._remember(key, Found(entity_set, ref, posted=True))
        return WriteResult(key, ref, created=True)

    def _complete(self, found: Found, key: str, build: Build, *, created: bool) -> WriteResult:
        """Post a document an earlier attempt created but did not post, once checked to be the one meant."""
        if not found.posted:
            _, body = self._build(build)
            self._check(
                found.entity_set, found.ref, body, self.odata.get(found.entity_set, found.ref, decode=False)
            )
            self.odata.post_document(found.entity_set, found.ref)
            self._remember(key, replace(found, posted=True))
        return WriteResult(key, found.ref, created)

    def _build(self, build: Build) -> tuple[str, dict[str, Any]]:
        try:
            return build()
        except ConnectorError as error:  # a missing partner, sku or store: say which system lacks it
            error.context.setdefault("system", self.system)
            raise

    def _remember(self, key: str, found: Found) -> None:
        with self._lock:
            self._index[key] = found

    def _check(self, entity_set: str, ref: str, sent: dict[str, Any], stored: dict[str, Any]) -> None:
        fields = differences(sent, stored)
        if fields:
            raise FatalRemoteError(
                f"{self.system}: {entity_set}({ref}) was stored differently from what was sent "
                f"(1C drops unknown fields and truncates silently): {', '.join(fields)}",
                system=self.system,
                entity=entity_set,
                document=ref,
                fields=", ".join(fields),
            )
