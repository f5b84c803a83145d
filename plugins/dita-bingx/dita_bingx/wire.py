"""What BingX puts on the wire: the signed query string, paths, plain decimals.

Shared by the client (:mod:`dita_bingx.venue`) and the simulator, so both sides speak
exactly the format BINGX.md describes.
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping
from urllib.parse import quote

LIVE_URL = "https://open-api.bingx.com"
VST_URL = "https://open-api-vst.bingx.com"

SERVER_TIME = "/openApi/swap/v2/server/time"
CONTRACTS = "/openApi/swap/v2/quote/contracts"
PREMIUM_INDEX = "/openApi/swap/v2/quote/premiumIndex"
ORDER = "/openApi/swap/v2/trade/order"
OPEN_ORDERS = "/openApi/swap/v2/trade/openOrders"
LEVERAGE = "/openApi/swap/v2/trade/leverage"
BALANCE = "/openApi/swap/v3/user/balance"
POSITIONS = "/openApi/swap/v2/user/positions"

#: The user data stream (BINGX.md §2.9): listenKeys over REST, then a WebSocket.
LISTEN_KEY = "/openApi/user/auth/userDataStream"
STREAM_PATH = "/swap-market"
LIVE_WS_URL = "wss://open-api-swap.bingx.com" + STREAM_PATH
VST_WS_URL = "wss://vst-open-api-ws.bingx.com" + STREAM_PATH

#: Order states that never change again (REST spelling, plus the one-L WS spelling).
FINAL_STATUSES = frozenset({"FILLED", "CANCELLED", "CANCELED", "EXPIRED", "FAILED"})
OPEN_STATUSES = frozenset({"NEW", "PENDING", "PARTIALLY_FILLED", "RUNNING"})

#: Codes that say "try again later" (BINGX.md §3): throttled or busy. BINGX.md never says
#: that such an answer means nothing was done, so a place answered with one may have been
#: carried out (the venue asks before sending it again); other requests are simply retried.
RATE_LIMIT_CODES = frozenset({100410, 109429})
BUSY_CODES = frozenset({80012, 100500, 109500, 110500})
#: Codes that mean "no such order".
NOT_FOUND_CODES = frozenset({80016, 109414, 109421})
#: Codes that mean "this client order id was already used".
DUPLICATE_ID_CODES = frozenset({101481, 109201, 101209})
TIMESTAMP_CODE = 100421


def wire_value(value: Any) -> str:
    """The text of one parameter: booleans as ``true``/``false`` (as CCXT sends them),
    decimals in plain notation, never ``1E-5``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return plain(value)
    return str(value)


def canonical(items: Iterable[tuple[str, str]]) -> str:
    """``k1=v1&k2=v2`` from raw (un-encoded) values: the string BingX signs."""
    return "&".join(f"{k}={v}" for k, v in items)


def encoded(items: Iterable[tuple[str, str]]) -> str:
    """The same pairs percent-encoded for the URL (identical for plain ASCII values)."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in items)


def sign(secret: bytes | str, payload: str) -> str:
    """Lower-case hex HMAC-SHA256 of ``payload`` keyed with ``secret`` (BINGX.md §1)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def plain(value: Decimal) -> str:
    """A decimal as plain text: ``0.00005``, never ``5E-5``; keeps the exponent it has."""
    return format(value, "f")


def normal(value: Decimal) -> str:
    """A decimal as its shortest plain text (``0.0040`` and ``0.004`` both give ``0.004``)."""
    text = format(value.normalize(), "f")
    return text


def step_of(precision: int) -> Decimal:
    """The increment ``10**-precision`` as an exact decimal (precision 0 gives 1)."""
    return Decimal(1).scaleb(-precision)


def to_decimal(value: Any, field: str) -> Decimal:
    """A BingX number (a JSON string, int or decimal; exponents allowed) as an exact
    decimal. Raises ``ValueError`` naming ``field`` for anything else."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{field} must be a number, got {value!r}")
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, (int, Decimal)):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{field} must be a number, got {value!r}") from None
    else:
        raise ValueError(f"{field} must be a number, got {type(value).__name__} {value!r}")
    if not result.is_finite():
        raise ValueError(f"{field} must be finite, got {value!r}")
    return result


def flag(value: Any, field: str) -> bool:
    """BingX booleans arrive as JSON booleans or as the strings "true"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"{field} must be true or false, got {value!r}")


def sorted_items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Parameters as wire pairs, sorted by key as CCXT and the official demo do."""
    return [(k, wire_value(v)) for k, v in sorted(params.items()) if v is not None]
