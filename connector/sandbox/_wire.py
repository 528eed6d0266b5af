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
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["Packer", "RateBudget", "RateDecision", "decode_cursor", "dumps", "encode_cursor"]

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


class Packer:
    """Keeps many similar JSON documents small: each is deflated against a dictionary of sample documents.

    Documents of one kind share most of their text (keys, shop names, product names), so a shared dictionary
    makes each of them several times smaller than plain deflate would; inflating a 1,000-document page costs
    a few milliseconds.

    Args:
        samples: typical documents; the last 8 KiB of them become the dictionary.
    """

    # 8 KiB: about 4x smaller documents; a larger dictionary packs little better but makes every call slower.
    _ZDICT_SIZE = 8192

    def __init__(self, samples: list[bytes]) -> None:
        self._zdict = b"".join(samples)[-self._ZDICT_SIZE :]

    def pack(self, document: bytes) -> bytes:
        """The document, deflated."""
        packer = zlib.compressobj(1, zdict=self._zdict) if self._zdict else zlib.compressobj(1)
        return packer.compress(document) + packer.flush()

    def unpack(self, packed: bytes) -> bytes:
        """The document :meth:`pack` was given."""
        unpacker = zlib.decompressobj(zdict=self._zdict) if self._zdict else zlib.decompressobj()
        return unpacker.decompress(packed) + unpacker.flush()
