"""Wire helpers shared by the emulated Evotor cloud and CRM: exact-decimal JSON, opaque cursors, a rate budget.

Money leaves the sandbox as JSON *numbers* with kopecks (``423.08``), exactly as the real systems print them,
yet never passes through binary floating point: :func:`dumps` lets the C JSON encoder call back for each
``Decimal``, marks its text, and unquotes the marks afterwards.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
import time
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["BlockStore", "RateBudget", "RateDecision", "decode_cursor", "dumps", "encode_cursor"]

_MARK = "\x01"
# json escapes the control character as \u0001, so a marked number shows up as "\u0001<digits>\u0001";
# dropping the quote+mark pairs leaves the bare number. Strings must therefore not start or end with U+0001.
_OPEN, _CLOSE = '"\\u0001', '\\u0001"'


def _decimal_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{_MARK}{value:f}{_MARK}"
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# One encoder for every call: json.dumps with options builds a new C encoder each time, which costs more
# than encoding a small document.
_ENCODER = json.JSONEncoder(default=_decimal_default, ensure_ascii=False, separators=(",", ":"))


def dumps(payload: Any) -> bytes:
    """Serialise ``payload`` to compact UTF-8 JSON, writing ``Decimal`` values as JSON numbers digit for digit.

    Example:
        >>> dumps({"sum": Decimal("423.08"), "qty": Decimal("2")})
        b'{"sum":423.08,"qty":2}'
    """
    text = _ENCODER.encode(payload)
    return text.replace(_OPEN, "").replace(_CLOSE, "").encode()


def encode_cursor(state: dict[str, Any]) -> str:
    """Encode paging state as an opaque, URL-safe cursor string."""
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any] | None:
    """Decode a cursor made by :func:`encode_cursor`; ``None`` when it is not one (the caller answers 400)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return state if isinstance(state, dict) else None


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one request against a budget, with what the rate headers should say."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the bucket is full again (allowed) or holds one request (refused)


class RateBudget:
    """A token bucket per credential: ``rate`` requests per second on average, bursts up to ``burst``.

    Args:
        rate: refill speed in requests per second; ``0`` or less disables limiting.
        burst: bucket size; defaults to one second's worth of requests.
        clock: monotonic clock, injectable for tests.
    """

    def __init__(
        self, rate: float, burst: int | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1, math.ceil(rate))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> RateDecision:
        """Spend one request of ``key``'s budget, or refuse when the bucket is empty."""
        if self.rate <= 0:
            return RateDecision(True, self.burst, self.burst, 0)
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
        if allowed:
            reset = math.ceil((self.burst - tokens) / self.rate)
        else:
            reset = max(1, math.ceil((1.0 - tokens) / self.rate))
        return RateDecision(allowed, self.burst, int(tokens), reset)


class BlockStore:
    """An append-only list of byte strings kept deflated in blocks of consecutive items.

    Consecutive documents of one store share most of their text, so a block of them deflates far better than
    each alone (5-10x for till receipts). Items are stored joined by ``separator``, so a run of consecutive
    items comes out of a block as one slice, already joined: serving a 1,000-document JSON page is inflating
    about 16 blocks and a handful of slices. The last blocks read stay inflated, since pages are read in order.

    Args:
        block_size: items per block.
        separator: what :meth:`joined` puts between items (``b","`` for a JSON array).
        cached_blocks: inflated blocks kept for the next read.
    """

    def __init__(self, block_size: int = 64, separator: bytes = b",", cached_blocks: int = 32) -> None:
        self.block_size = block_size
        self.separator = separator
        self._blocks: list[bytes] = []
        self._ends: list[array[int]] = []  # per block, where each item ends in the inflated block
        self._pending: list[bytes] = []  # the last, incomplete block, kept as it is
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cached_blocks = cached_blocks

    def __len__(self) -> int:
        return len(self._blocks) * self.block_size + len(self._pending)

    def append(self, item: bytes) -> int:
        """Add an item; returns its index."""
        self._pending.append(item)
        if len(self._pending) == self.block_size:
            self._seal()
        return len(self) - 1

    def _seal(self) -> None:
        ends = array("L")
        end = -len(self.separator)
        for item in self._pending:
            end += len(self.separator) + len(item)
            ends.append(end)
        self._blocks.append(zlib.compress(self.separator.join(self._pending), 1))
        self._ends.append(ends)
        self._pending = []

    def _inflated(self, block: int) -> bytes:
        data = self._cache.get(block)
        if data is None:
            data = zlib.decompress(self._blocks[block])
            self._cache[block] = data
            if len(self._cache) > self._cached_blocks:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(block)
        return data

    def _run(self, block: int, first: int, last: int) -> bytes:
        """Items ``first``..``last`` (slots) of a block, joined by the separator."""
        if block == len(self._blocks):
            return self.separator.join(self._pending[first : last + 1])
        ends = self._ends[block]
        start = ends[first - 1] + len(self.separator) if first else 0
        return self._inflated(block)[start : ends[last]]

    def get(self, index: int) -> bytes:
        """The item at ``index``."""
        block, slot = divmod(index, self.block_size)
        return self._run(block, slot, slot)

    def joined(self, indices: Iterable[int]) -> bytes:
        """The items at ``indices``, in that order, joined by the separator."""
        runs: list[bytes] = []
        block = first = last = -1
        for index in indices:
            here, slot = divmod(index, self.block_size)
            if here == block and slot == last + 1:
                last = slot
                continue
            if block >= 0:
                runs.append(self._run(block, first, last))
            block, first, last = here, slot, slot
        if block >= 0:
            runs.append(self._run(block, first, last))
        return self.separator.join(runs)

    @property
    def packed_size(self) -> int:
        """Bytes held, deflated blocks and pending items together."""
        return sum(map(len, self._blocks)) + sum(map(len, self._pending))
