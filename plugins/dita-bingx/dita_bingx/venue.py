"""The BingX USDT-M perpetual venue: a REST client that turns the kernel's orders into
signed BingX requests and BingX's order states into DITA venue events.

How answers become events
-------------------------
Every order this venue sends is tracked by its client order id. Whatever BingX says about
the order (the place answer, a cancel answer, an order query, the open-order list) goes
through one function, :meth:`BingXVenue._absorb`, which compares the order's cumulative
figures (``executedQty``, ``cumQuote``, ``commission``) with what was already reported and
appends the difference as events: one ``ORDER_ACK``, one fill per increase of the executed
quantity (``filled_size`` is that increase alone, ``fill_price`` is the increase of the
traded value divided by it, ``fee`` the increase of the commission), and one ending event.
Event ids are made of the BingX order id and the cumulative executed quantity, so the same
state seen twice yields the same ids and the kernel applies each once.

Failures
--------
A refusal by the exchange (HTTP 200 with ``code != 0``) becomes a REJECT / CANCEL_REJECT
event carrying the code and message. Throttling (HTTP 429, codes 100410/109429) and
"system busy" codes are retried with backoff; requests are also paced below the documented
per-UID rates. A place request whose answer is lost (timeout, dropped connection, 5xx,
unreadable body) is resolved by querying its client order id before anything is retried;
BingX refuses a client order id it has seen, which makes a retry safe as well.

The user data stream (option ``stream``)
----------------------------------------
With ``stream=True`` a daemon thread holds BingX's user data stream (a listenKey and a
WebSocket, BINGX.md §2.9). Each ``ORDER_TRADE_UPDATE`` of an order this venue follows is
turned into the same cumulative figures a REST answer carries (``executedQty`` = ``z``, the
traded value and the commission summed from each TRADE's ``l`` x ``L`` and ``n``) and goes
through :meth:`BingXVenue._absorb` under the venue's lock, so the events and their ids are
the ones REST would give, and a fill seen by both is reported once. The stream is never the
only source of truth: anything it cannot vouch for (a gap in an order's fills, a reconnect,
an expired key, an unreadable frame) makes ``poll()`` ask REST, and ``poll()`` asks REST for
every live order at least every ``stream_check_interval`` seconds.
"""

from __future__ import annotations

import collections
import functools
import gzip
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, Inexact, InvalidOperation, localcontext
from typing import Any, Mapping
from urllib.parse import urlsplit

import httpx

import dita
from dita import Instrument, InvalidInputError, Order, VenueError, VenueEvent

from dita_bingx import wire
from dita_bingx.wire import (
    BUSY_CODES, DUPLICATE_ID_CODES, FINAL_STATUSES, NOT_FOUND_CODES, RATE_LIMIT_CODES, TIMESTAMP_CODE,
)

log = logging.getLogger("dita_bingx")
#: The websockets library's own log lines (the handshake names the URL, with the listenKey).
ws_log = logging.getLogger("dita_bingx.websockets")

TIME_IN_FORCE = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "POSTONLY": "PostOnly", "POST_ONLY": "PostOnly"}
POSITION_MODES = ("one-way", "hedge")

#: Documented per-UID request rates (BINGX.md §4): (requests, window in seconds).
RATE_BUCKETS = {
    "place": (10, 1.0), "cancel": (5, 1.0), "query": (5, 1.0), "open_orders": (5, 1.0),
    "balance": (5, 1.0), "positions": (5, 1.0), "leverage": (5, 1.0),
    "market": (500, 10.0),   # all public market-data endpoints together, per IP
}
#: Headroom on each window: a request sent just inside it can arrive just outside.
PACE_SLACK = 0.05
#: A change of traded value whose average price does not divide out exactly is split in two
#: fills, the first at the average rounded to this many places (see _fill).
PRICE_PLACES = Decimal("1e-12")
#: How far from the average the price of the split's last step may be, relatively.
SPLIT_TOLERANCE = Decimal("1e-9")


def _holdable(d: Decimal) -> bool:
    """Whether the kernel holds ``d`` exactly: at most 28 places and 28 digits."""
    t = d.normalize().as_tuple()
    return -t.exponent <= 28 and len(t.digits) <= 28


# ------------------------------------------------------------------ errors


class BingXError(VenueError):
    """A BingX request failed. Subclasses say how."""


class ExchangeRefused(BingXError):
    """BingX answered and refused: ``code`` and ``msg`` are its own."""

    def __init__(self, code: int, msg: str, what: str):
        self.code, self.msg = code, msg
        super().__init__(f"BingX refused {what}: code {code}: {msg}")


class RateLimited(BingXError):
    """Still throttled after every retry the venue allows itself."""


class UncertainOutcome(BingXError):
    """No usable answer: a timeout, a lost connection, a 5xx or an unreadable body. The
    request may or may not have been carried out."""

    #: True when the request may simply not have arrived (a retry after checking is sound).
    transport = False


class TransportFailure(UncertainOutcome):
    transport = True


class Busy(UncertainOutcome):
    """A place answered "system busy" or "rate limit" in the body (BINGX.md §3): BingX does
    not say the order was not carried out, so it may have been. Sent again only after a query
    by client order id finds nothing."""

    transport = True


class BadResponse(UncertainOutcome):
    """The answer arrived but is not what BingX documents (malformed JSON, wrong types)."""


class NotFollowed(BingXError):
    """Fills of an order this venue did not follow from its placement (a kernel restored from
    a snapshot): what the kernel already applied is unknown, so no delta can be reported."""


class _Refusal(Exception):
    """An order this venue will not send; the text says why."""


# ------------------------------------------------------------------ credentials


class _Credentials:
    """The API key and secret, kept out of ``repr``, ``vars`` and pickles. The secret is
    held only as a keyed HMAC state, never as text."""

    __slots__ = ("_key", "_mac")

    def __init__(self, api_key: str, api_secret: str):
        self._key = api_key
        self._mac = hmac.new(api_secret.encode(), digestmod=hashlib.sha256)

    def headers(self) -> dict[str, str]:
        return {"X-BX-APIKEY": self._key}

    def sign(self, payload: str) -> str:
        mac = self._mac.copy()
        mac.update(payload.encode())
        return mac.hexdigest()

    def __repr__(self) -> str:
        return "<BingX credentials: hidden>"

    __str__ = __repr__

    def __reduce_ex__(self, protocol):
        raise TypeError("BingX credentials cannot be pickled or copied")


class _Hidden:
    """A listenKey: whoever holds it reads the account's orders, so it stays out of ``repr``,
    ``vars`` and pickles, like the credentials."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "<listenKey: hidden>"

    __str__ = __repr__

    def __reduce_ex__(self, protocol):
        raise TypeError("a BingX listenKey cannot be pickled or copied")


_LISTEN_KEY_TEXT = re.compile(r"(listenKey[\"']?\s*[=:]\s*[\"']?)[^&\s\"',}]+")


def _redact(text: str) -> str:
    """``text`` with any listenKey value replaced (URLs, JSON)."""
    return _LISTEN_KEY_TEXT.sub(r"\1<hidden>", text)


class _RedactListenKey(logging.Filter):
    """Rewrites a log record that names a listenKey (httpx logs every request's URL at INFO,
    websockets its handshake at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:   # a record that cannot be formatted is not ours to fix
            return True
        if "listenKey" in text:
            record.msg, record.args = _redact(text), None
        return True


def _guard_logs() -> None:
    """Installs the redaction on the loggers that see the listenKey (once)."""
    for name in ("httpx", ws_log.name):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactListenKey) for f in logger.filters):
            logger.addFilter(_RedactListenKey())


def _locked(method):
    """Runs a public method under the venue's lock: with the stream on, its thread changes
    the same order records."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


# ------------------------------------------------------------------ bookkeeping


@dataclass(frozen=True)
class Contract:
    """One perpetual contract as the contracts endpoint describes it."""

    symbol: str
    price_increment: Decimal
    size_increment: Decimal
    min_quantity: Decimal
    min_notional: Decimal | None
    api_open: bool
    api_close: bool
    status: int | None
    max_long_leverage: int | None
    max_short_leverage: int | None

    def instrument(self) -> Instrument:
        return Instrument(self.price_increment, self.size_increment, self.min_quantity, self.min_notional)


@dataclass
class _Tracked:
    """What this venue knows of one order it sent, and what it has reported of it."""

    order: Order
    venue_order_id: str | None = None
    followed: bool = True          # reported since placement, so "what was reported" is known
    placed: bool = False           # BingX confirmed it has the order
    unresolved: bool = False       # the place answer was lost and queries did not settle it
    lost_because: str = ""         # why the place answer was lost (said again if it never arrives)
    sent_ms: int = 0               # timestamp of the last place attempt (BingX drops it after recvWindow)
    first_sent_ms: int = 0         # timestamp of the first place attempt (our order cannot be older)
    sent_mono: float = 0.0         # time.monotonic() of the last place attempt (the 1 s resubmission rule)
    attempts: int = 0              # place attempts that may have been carried out (no answer, busy, unreadable)
    acked: bool = False
    cum: Decimal = Decimal(0)      # executed quantity reported so far
    value: Decimal = Decimal(0)    # traded value (sum of size x price) reported so far
    fees: Decimal = Decimal(0)     # fees reported so far (positive = paid)
    final: bool = False
    cancel_sent: bool = False
    events: list = field(default_factory=list)
    delivered: int = 0
    # The stream connection (its number) that has carried every change of the order since the
    # venue last knew its whole state (its placement, or a REST answer); None: poll() asks REST.
    stream_epoch: int | None = None


FOUND, NOT_FOUND, UNKNOWN, FOREIGN = "found", "not found", "unknown", "foreign"
#: BINGX.md §3: "The same order number is only allowed to be submitted once within 1 second"
#: (109201 / 101209). A place is sent again only this long after the last attempt, so the
#: retry is not refused for coming too soon (plus a margin for the trip).
RESUBMIT_AFTER = 1.1
#: Refusals that may come from contracts changed since they were loaded (minimum quantity or
#: value, invalid parameters): the contracts are loaded again before the next order.
PRECISION_CODES = frozenset({101400, 109400, 80014, 110425})
#: How far before our first attempt BingX may date our order: it refuses timestamps more
#: than about 1 s ahead of its clock (BINGX.md §1, [guess]); generous on purpose.
CLOCK_MARGIN_MS = 5000
_NOT_JSON = object()
#: The stream: the longest wait between reconnection attempts, and how long a connection may
#: stay silent (BingX sends "Ping" about every 5 s) before it is taken for dead.
STREAM_MAX_BACKOFF = 60.0
STREAM_IDLE_TIMEOUT = 30.0
#: How soon a failed listenKey extension is tried again, at most.
STREAM_EXTEND_RETRY = 30.0
#: How often the stream thread looks whether close() asked it to end. The connection is held
#: only by the thread (nothing reachable from the venue holds its URL, with the listenKey).
STREAM_STOP_CHECK = 0.2
#: What a stream message handler tells the connection loop.
_KEY_EXPIRED = "expired"


class BingXVenue(dita.Venue):
    """BingX USDT-M perpetual futures through the REST API.

    :param api_key: API key; defaults to the ``BINGX_API_KEY`` environment variable.
    :param api_secret: API secret; defaults to ``BINGX_API_SECRET``.
    :param demo: trade on the VST demo host instead of the live one.
    :param base_url: another host (a simulator), overriding ``demo``.
    :param position_mode: ``"one-way"`` (BingX's default; exits are ``reduceOnly``) or
        ``"hedge"`` (``positionSide`` LONG/SHORT; BingX refuses ``reduceOnly`` there). It must
        match the account's setting.
    :param time_in_force: for LIMIT orders: GTC, IOC, FOK or PostOnly; an intent's
        ``metadata["time_in_force"]`` overrides it for its order.
    :param recv_window: ms a signed request stays valid (BingX's default is 5000).
    :param timeout: seconds to wait for an answer.
    :param max_retries: retries of a throttled or busy request.
    :param retry_backoff: first backoff in seconds; it doubles per retry, up to 2 s.
    :param submit_attempts: place attempts when answers are lost (each after a query).
    :param pace: keep below the documented per-UID request rates.
    :param sync_time: align timestamps with BingX's server time before the first signed call.
    :param client_order_id_prefix: prefix of every client order id (``[a-z0-9_-]``, at most
        12 characters), to tell this kernel's orders from others on the same account.
    :param stream: follow orders through BingX's user data stream as well (off by default).
    :param stream_url: the WebSocket URL (default: the live or VST stream host, or
        ``ws(s)://<base_url host>/swap-market`` for another ``base_url``).
    :param stream_keepalive: seconds between listenKey extensions (BingX keeps a key 60 min).
    :param stream_check_interval: with the stream healthy, ``poll()`` still asks REST about
        every live order at least this often (a frame lost without trace is found).
    :param stream_backoff: first wait before reconnecting; it doubles per failure up to 60 s.
    """

    def __init__(self, api_key: str | None = None, api_secret: str | None = None, *, demo: bool = False,
                 base_url: str | None = None, position_mode: str = "one-way", time_in_force: str = "GTC",
                 recv_window: int = 5000, timeout: float = 10.0, max_retries: int = 5, retry_backoff: float = 0.2,
                 submit_attempts: int = 3, pace: bool = True, sync_time: bool = True,
                 client_order_id_prefix: str = "dita-", stream: bool = False, stream_url: str | None = None,
                 stream_keepalive: float = 1800.0, stream_check_interval: float = 30.0, stream_backoff: float = 1.0):
        api_key = api_key if api_key is not None else os.environ.get("BINGX_API_KEY")
        api_secret = api_secret if api_secret is not None else os.environ.get("BINGX_API_SECRET")
        missing = [name for name, v in (("api_key", api_key), ("api_secret", api_secret)) if not v]
        if missing:
            raise VenueError(f"BingX venue: {' and '.join(missing)} missing. Hint: pass them in venue_options "
                             "or set BINGX_API_KEY / BINGX_API_SECRET")
        for name, v in (("api_key", api_key), ("api_secret", api_secret)):
            if not isinstance(v, str):
                raise InvalidInputError(f"BingX venue: {name} must be a string, got {type(v).__name__}")
        self._creds = _Credentials(api_key, api_secret)
        if base_url is None:
            base_url = wire.VST_URL if demo else wire.LIVE_URL
        if not isinstance(base_url, str) or not re.match(r"^https?://[^/?#]+(/[^?#]*)?$", base_url):
            raise InvalidInputError(f"BingX venue: base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        if position_mode not in POSITION_MODES:
            raise InvalidInputError(f"BingX venue: position_mode must be one of {', '.join(POSITION_MODES)}, got {position_mode!r}")
        self.position_mode = position_mode
        if position_mode == "hedge":   # one-way nets LONG and SHORT of a symbol into one position
            self.capabilities = type(self).capabilities | {"hedge_mode"}
        self.time_in_force = self._tif(time_in_force, "time_in_force option")
        for name, value, low in (("recv_window", recv_window, 1), ("max_retries", max_retries, 0),
                                 ("submit_attempts", submit_attempts, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInputError(f"BingX venue: {name} must be an int >= {low}, got {value!r}")
        if recv_window > 60000:
            raise InvalidInputError(f"BingX venue: recv_window is at most 60000 ms on BingX, got {recv_window}")
        for name, value in (("timeout", timeout), ("retry_backoff", retry_backoff),
                            ("stream_keepalive", stream_keepalive), ("stream_check_interval", stream_check_interval),
                            ("stream_backoff", stream_backoff)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidInputError(f"BingX venue: {name} must be a non-negative number of seconds, got {value!r}")
        if not isinstance(client_order_id_prefix, str) or not re.fullmatch(r"[a-z0-9_-]{1,12}", client_order_id_prefix):
            raise InvalidInputError("BingX venue: client_order_id_prefix must be 1-12 characters of a-z, 0-9, '_' "
                                    f"or '-', got {client_order_id_prefix!r}")
        self.recv_window = recv_window
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.retry_backoff = float(retry_backoff)
        self.submit_attempts = submit_attempts
        self.pace = bool(pace)
        self.sync_time = bool(sync_time)
        self.client_order_id_prefix = client_order_id_prefix
        self._client = httpx.Client(timeout=self.timeout)
        self._lock = threading.RLock()
        self._sent: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._offset_ms: int | None = None
        self._contracts: dict[str, Contract] | None = None
        self._leverage: dict[tuple[str, str], int] = {}
        self._orders: dict[str, _Tracked] = {}
        self.retries = 0  # throttled/busy requests retried so far (tests and operators watch it)
        if not isinstance(stream, bool):
            raise InvalidInputError(f"BingX venue: stream must be true or false, got {stream!r}")
        if stream_url is None:
            known = {wire.LIVE_URL: wire.LIVE_WS_URL, wire.VST_URL: wire.VST_WS_URL}
            host = urlsplit(self.base_url)
            stream_url = known.get(self.base_url) or \
                f"{'wss' if host.scheme == 'https' else 'ws'}://{host.netloc}{wire.STREAM_PATH}"
        if not isinstance(stream_url, str) or not re.match(r"^wss?://[^/?#]+(/[^?#]*)?$", stream_url):
            raise InvalidInputError(f"BingX venue: stream_url must be a ws(s) URL without a query, got {stream_url!r}")
        self.stream = stream
        self.stream_url = stream_url
        self.stream_keepalive = float(stream_keepalive)
        self.stream_check_interval = float(stream_check_interval)
        self.stream_backoff = float(stream_backoff)
        self._stream_stop = threading.Event()
        self._stream_thread: threading.Thread | None = None
        self._listen_key: _Hidden | None = None
        self._next_extend = float("inf")    # time.monotonic() of the next listenKey extension
        self._stream_up = False              # a connection is open and being read
        self._stream_epoch = 0               # how many connections were opened
        self._last_full_check = time.monotonic()
        self._stream_counts = {"listen_keys": 0, "extensions": 0, "gaps": 0}
        self._stream_error = ""
        if stream:
            _guard_logs()
            self._stream_thread = threading.Thread(target=self._stream_main, name="bingx-user-stream", daemon=True)
            self._stream_thread.start()

    def __repr__(self) -> str:
        stream = f", stream={'connected' if self._stream_up else 'down'}" if self.stream else ""
        return (f"BingXVenue(base_url={self.base_url!r}, position_mode={self.position_mode!r}, "
                f"credentials=hidden, orders={len(self._orders)}{stream})")

    @staticmethod
    def _tif(value: Any, where: str) -> str:
        """BingX's spelling of a time in force (GTC, IOC, FOK, PostOnly), any case."""
        canonical = TIME_IN_FORCE.get(value.upper()) if isinstance(value, str) else None
        if canonical is None:
            raise InvalidInputError(f"{where}: time in force must be GTC, IOC, FOK or PostOnly, got {value!r}")
        return canonical

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stops the stream (its thread ends and its listenKey is deleted) and closes the
        HTTP connections."""
        thread = self._stream_thread
        if thread is not None:
            self._stream_stop.set()   # the thread sees it within STREAM_STOP_CHECK s
            thread.join(self.timeout + 5.0)
            if thread.is_alive():
                log.warning("BingX stream thread did not end within %.0f s", self.timeout + 5.0)
            key, self._listen_key = self._listen_key, None
            if key is not None:
                try:
                    self._listen_key_call("DELETE", key)
                except BingXError as exc:   # it expires on its own within the hour
                    log.warning("BingX stream: deleting the listenKey failed: %s", exc)
            self._stream_thread = None
        self._client.close()

    def __enter__(self) -> "BingXVenue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ instruments and formatters

    def instruments(self) -> Mapping[str, Instrument]:
        return {symbol: c.instrument() for symbol, c in self._load_contracts().items()}

    def refresh_instruments(self) -> Mapping[str, Instrument]:
        """Fetches the contracts again (listings and precisions change) and returns them."""
        self._contracts = None
        return self.instruments()

    def contract(self, symbol: str) -> Contract:
        """The contract of ``symbol``, with the API open/close flags; unknown symbols raise."""
        contracts = self._load_contracts()
        if symbol not in contracts:
            raise InvalidInputError(f"BingX does not list {symbol!r}. Hint: symbols look like 'BTC-USDT'; "
                                    "refresh_instruments() reloads the list")
        return contracts[symbol]

    def _load_contracts(self) -> dict[str, Contract]:
        if self._contracts is None:
            data = self._request("GET", wire.CONTRACTS, {}, signed=False, bucket="market", what="the contracts request")
            if not isinstance(data, list):
                raise BadResponse(f"BingX contracts: data must be a list, got {type(data).__name__}")
            contracts = {}
            for i, raw in enumerate(data):
                c = _parse_contract(raw, i)
                contracts[c.symbol] = c
            self._contracts = contracts
        return self._contracts

    def format_price(self, asset: str, price: Decimal, side: str) -> str:
        tick = self.contract(asset).price_increment
        price = dita.types.to_decimal(price, "price")
        if price <= 0:
            raise InvalidInputError(f"price for {asset} must be positive, got {price}")
        if side not in ("BUY", "SELL"):
            raise InvalidInputError(f"side must be BUY or SELL, got {side!r}")
        # Never against the trader: a buy limit rounds down, a sell limit up.
        try:
            steps = (price / tick).to_integral_value(rounding=ROUND_FLOOR if side == "BUY" else ROUND_CEILING)
            result = (steps * tick).quantize(tick)
        except InvalidOperation:
            raise InvalidInputError(f"price {price} for {asset} is too large to put on BingX's tick {tick}") from None
        if result <= 0:
            raise InvalidInputError(f"price {price} for {asset} rounds to {result} on BingX's tick {tick}")
        return wire.plain(result)

    def format_quantity(self, asset: str, quantity: Decimal) -> str:
        step = self.contract(asset).size_increment
        quantity = dita.types.to_decimal(quantity, "quantity")
        if quantity < 0:
            raise InvalidInputError(f"quantity for {asset} must not be negative, got {quantity}")
        try:
            steps = (quantity / step).to_integral_value(rounding=ROUND_FLOOR)
            # copy_abs: a zero is sent as 0, never as -0.
            return wire.plain((steps * step).quantize(step).copy_abs())
        except InvalidOperation:
            raise InvalidInputError(f"quantity {quantity} for {asset} is too large to put on BingX's size step "
                                    f"{step}") from None

    def client_order_id(self, intent: dita.KernelIntent) -> str:
        """``<prefix><intent id>`` when the intent id already obeys BingX's rules (1-40
        characters; BingX lowercases ids, so only lower-case letters, digits, ``_``, ``-``);
        otherwise ``<prefix>h_<hash of the intent id>``. Either way the same intent always
        gives the same id, and two intents never share one."""
        room = 40 - len(self.client_order_id_prefix)
        raw = intent.intent_id
        if re.fullmatch(r"[a-z0-9][a-z0-9_-]*", raw) and len(raw) <= room and not raw.startswith("h_"):
            return self.client_order_id_prefix + raw
        digest = hashlib.sha256(raw.encode()).hexdigest()
        return self.client_order_id_prefix + "h_" + digest[: room - 2]

    # ------------------------------------------------------------------ orders

    @_locked
    def submit(self, order: Order) -> list[VenueEvent]:
        known = self._orders.get(order.client_order_id)
        if known is not None:
            # The same client order id again: never a second order, only what is known.
            return list(known.events)
        # Followed by the stream from here on if a connection is open now (before the place
        # is sent): every change of the new order reaches that connection.
        tracked = _Tracked(order, stream_epoch=self._stream_epoch if self._stream_up else None)
        self._orders[order.client_order_id] = tracked
        try:
            params = self._order_params(order)
        except (_Refusal, InvalidInputError) as exc:   # a refusal, not a failure: nothing was sent
            return self._reject(tracked, "refused", str(exc))
        except BingXError as exc:   # a call before the place failed (the leverage, say): nothing was sent
            return self._reject(tracked, "refused", f"{exc}; the order was not sent")
        except BaseException:
            del self._orders[order.client_order_id]   # nothing was sent: forget it
            raise
        return self._place(tracked, params)

    def _order_params(self, order: Order) -> dict[str, Any]:
        """The place-order parameters, or :class:`_Refusal` when the order must not be sent."""
        contracts = self._load_contracts()
        contract = contracts.get(order.asset)
        if contract is None:
            raise _Refusal(f"BingX does not list {order.asset!r}")
        if order.order_type not in ("MARKET", "LIMIT"):
            raise _Refusal(f"order type {order.order_type!r} is not supported (MARKET or LIMIT)")
        if order.side not in ("BUY", "SELL") or order.position_side not in ("LONG", "SHORT"):
            raise _Refusal(f"side {order.side!r} / position side {order.position_side!r} must be BUY/SELL and LONG/SHORT")
        opening = not order.reduce_only
        # The contract's trading status (BINGX.md 2.1): 1 online, 0 offline, 5 pre-online,
        # 25 close only. Anything else is left to the exchange.
        if contract.status in (0, 5) or (contract.status == 25 and opening):
            meaning = {0: "offline", 5: "not online yet", 25: "close only"}[contract.status]
            raise _Refusal(f"BingX lists {order.asset} as {meaning} (status {contract.status}): "
                           f"{'no order' if contract.status != 25 else 'no opening order'} is taken")
        if opening and not contract.api_open:
            raise _Refusal(f"BingX does not allow opening positions in {order.asset} through the API (apiStateOpen=false)")
        if not opening and not contract.api_close:
            raise _Refusal(f"BingX does not allow closing positions in {order.asset} through the API (apiStateClose=false)")
        quantity = dita.types.to_decimal(order.quantity, "quantity")
        qty_text = self.format_quantity(order.asset, quantity)
        if Decimal(qty_text) != quantity:
            raise _Refusal(f"quantity {quantity} is not a multiple of BingX's size step {contract.size_increment} "
                           f"for {order.asset}")
        if quantity < contract.min_quantity or quantity <= 0:
            raise _Refusal(f"quantity {quantity} is below BingX's minimum order quantity {contract.min_quantity} "
                           f"for {order.asset} (tradeMinQuantity)")
        params: dict[str, Any] = {"symbol": order.asset, "side": order.side, "type": order.order_type,
                                  "quantity": qty_text, "clientOrderID": order.client_order_id}
        price = None
        if order.order_type == "LIMIT":
            if order.limit_price is None:
                raise _Refusal("a LIMIT order needs a limit price")
            price = dita.types.to_decimal(order.limit_price, "limit_price")
            price_text = self.format_price(order.asset, price, order.side)
            if Decimal(price_text) != price:
                raise _Refusal(f"limit price {price} is not on BingX's tick {contract.price_increment} for {order.asset}")
            params["price"] = price_text
            params["timeInForce"] = self._order_tif(order)
        if opening and contract.min_notional:
            # A closing order is not held to the minimum value: what is left of a position
            # must stay closable, and that is the exchange's call.
            reference = price or (order.intent.reference_price if order.intent is not None else None)
            if reference is None:
                reference = self._mark_price_or_none(order.asset)
            if reference is not None and quantity * reference < contract.min_notional:
                raise _Refusal(f"order value {wire.plain(quantity * reference)} USDT ({quantity} x {reference}) is below "
                               f"BingX's minimum order value {contract.min_notional} USDT for {order.asset} (tradeMinUSDT)")
        if self.position_mode == "hedge":
            params["positionSide"] = order.position_side
        else:
            params["positionSide"] = "BOTH"
            if order.reduce_only:
                params["reduceOnly"] = True
        if opening and order.leverage is not None:
            self._ensure_leverage(order, contract)
        return params

    def _order_tif(self, order: Order) -> str:
        """The time in force of a LIMIT order: the intent's, else the venue's."""
        return self._tif((order.metadata or {}).get("time_in_force", self.time_in_force), "metadata time_in_force")

    def _ensure_leverage(self, order: Order, contract: Contract) -> None:
        leverage = dita.types.to_decimal(order.leverage, "leverage")
        if leverage < 1 or leverage != leverage.to_integral_value():
            raise _Refusal(f"BingX takes whole-number leverage of at least 1, got {leverage}")
        limit = contract.max_long_leverage if order.position_side == "LONG" else contract.max_short_leverage
        if limit and leverage > limit:
            raise _Refusal(f"leverage {leverage} exceeds BingX's maximum {limit} for {order.position_side} {order.asset}")
        side = order.position_side if self.position_mode == "hedge" else "BOTH"
        key = (order.asset, side)
        if self._leverage.get(key) == int(leverage):
            return
        try:
            self._request("POST", wire.LEVERAGE, {"symbol": order.asset, "side": side, "leverage": int(leverage)},
                          signed=True, bucket="leverage", what=f"leverage {int(leverage)}x for {order.asset}")
        except (ExchangeRefused, RateLimited) as exc:
            raise _Refusal(str(exc)) from None
        self._leverage[key] = int(leverage)

    def _place(self, tracked: _Tracked, params: dict) -> list[VenueEvent]:
        coid = tracked.order.client_order_id
        lost = busy = 0   # attempts lost on the way / answered "busy"
        while True:
            if tracked.attempts:
                # A retry. BingX refuses the same client order id twice within 1 s (109201):
                # wait that out, so the retry is carried out or refused on its merits.
                wait = tracked.sent_mono + RESUBMIT_AFTER - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            try:
                data = self._request("POST", wire.ORDER, params, signed=True, bucket="place", what=f"order {coid}",
                                     tracked=tracked)
                payload = _order_object(data, "place order")
                venue_order_id = _order_id(payload, "place order")
            except ExchangeRefused as exc:
                if exc.code in DUPLICATE_ID_CODES and not tracked.attempts:
                    # No earlier attempt of ours can have been carried out (every one was
                    # refused, or throttled with HTTP 429), so nothing of ours holds the id:
                    # another order does (another kernel on the account, or an earlier session
                    # with the same intent ids). Its fills are not ours, nor is a cancel of it.
                    return self._reject(tracked, "rejected", f"BingX {exc.code}: {exc.msg}: client order id {coid} "
                                        "is taken by another order on this account (another kernel, or an earlier "
                                        "session with the same intent ids? give each its own "
                                        "client_order_id_prefix); nothing was placed")
                if tracked.attempts:
                    # A retry refused, after an attempt that may have been carried out. A
                    # duplicate id: taken by that attempt (its answer was lost), by another
                    # order, or sent within the last second (109201). Any other refusal proves
                    # nothing about the earlier attempt either (one still on its way may have
                    # used the margin the retry lacked). So ask.
                    state = self._resolve(tracked)
                    if state == FOUND:
                        return self._deliver(tracked)
                    if state == UNKNOWN:
                        tracked.unresolved = True
                        return self._deliver(tracked)
                    if state == FOREIGN:
                        return self._reject(tracked, "rejected", f"BingX {exc.code}: {exc.msg}: client order id "
                                            f"{coid} belongs to another, earlier order")
                    # Not found, but an earlier attempt of ours may still be on its way.
                    # Refused now, it could open a position nobody follows; so the slot waits,
                    # and poll() settles it (the order, or a REJECT once recvWindow has passed
                    # without it).
                    tracked.unresolved = True
                    tracked.lost_because = (f"BingX {exc.code}: {exc.msg} (a retry, after an attempt that may "
                                            f"have been carried out); BingX had no order {coid} when asked")
                    log.warning("BingX place %s: %s; poll() will settle it", coid, tracked.lost_because)
                    return self._deliver(tracked)
                if exc.code in PRECISION_CODES:
                    self._contracts = None   # the minimum or the precision may have changed: reload them
                return self._reject(tracked, "rejected", f"BingX {exc.code}: {exc.msg}")
            except RateLimited as exc:   # HTTP 429 after every retry, or 418: never carried out
                if not tracked.attempts:
                    return self._reject(tracked, "rejected", str(exc))
                # An earlier attempt may have been carried out: settled as a lost answer.
                tracked.unresolved = True
                tracked.lost_because = f"{exc}; an earlier attempt may have been carried out"
                return self._deliver(tracked)
            except UncertainOutcome as exc:
                tracked.attempts += 1
                if isinstance(exc, Busy):
                    busy += 1
                    time.sleep(self._backoff(busy))   # a busy exchange shows a new order late, if at all
                else:
                    lost += 1
                log.warning("BingX place %s: %s; querying the client order id before anything else", coid, exc)
                state = self._resolve(tracked)
                if state == FOUND:
                    return self._deliver(tracked)
                if state == FOREIGN:   # ours was not placed; the id belongs to an older order
                    return self._reject(tracked, "rejected", f"{exc}; client order id {coid} belongs to "
                                        "another, earlier order at BingX")
                if state == UNKNOWN:
                    # Neither placed nor refused as far as anyone can tell: the slot keeps
                    # waiting for its answer and poll() settles it.
                    tracked.unresolved = True
                    log.warning("BingX place %s: outcome unknown; poll() will settle it", coid)
                    return self._deliver(tracked)
                if isinstance(exc, Busy) and busy <= self.max_retries:
                    self.retries += 1
                    continue   # BingX has no such order: it was too busy to take it
                if exc.transport and not isinstance(exc, Busy) and lost < self.submit_attempts:
                    continue   # BingX has no such order: the request was lost on the way
                # BingX has no such order yet, but a request still in flight (queued behind a
                # gateway that answered 5xx, or slower than our timeout) is carried out until
                # it is recvWindow old. Reported now as refused, it could still open a position
                # the slot no longer knows of, after the strategy entered again. So the slot
                # waits in ORDER_REQUESTED and poll() settles it: the order, or a REJECT once
                # recvWindow has passed without it.
                tracked.unresolved = True
                tracked.lost_because = f"{exc}; BingX had no order {coid} when asked"
                log.warning("BingX place %s: %s; poll() will settle it", coid, tracked.lost_because)
                return self._deliver(tracked)
            # BingX has the order: from here on nothing may raise (the kernel would take a
            # raised error for a REJECT of a live order).
            tracked.venue_order_id = venue_order_id
            tracked.placed = True
            tracked.acked = True
            self._event(tracked, "ORDER_ACK", "ack")
            if self._may_have_filled(tracked, payload):
                try:
                    self._refresh(tracked)
                except BingXError as exc:  # the order stands; poll() reports its fills
                    log.warning("BingX order %s placed, details not read yet: %s", coid, exc)
            return self._deliver(tracked)

    def _may_have_filled(self, tracked: _Tracked, payload: Mapping) -> bool:
        """Whether to ask for the order at once: the place answer says it may have traded."""
        if tracked.order.order_type == "MARKET":
            return True
        status = payload.get("status")
        if status in (None, ""):
            # The documented answer (BINGX.md §2.2) carries no status or executedQty. An IOC
            # or FOK order has already ended, and is asked for now; a GTC one that traded on
            # arrival is seen by the next poll() (not asked now: queries allow 5/s, places 10/s).
            return self._order_tif(tracked.order) in ("IOC", "FOK")
        if status not in ("NEW", "PENDING"):
            return True
        try:
            return wire.to_decimal(payload.get("executedQty") or 0, "executedQty") > 0
        except ValueError:
            return True

    @_locked
    def cancel(self, order: Order) -> list[VenueEvent]:
        tracked = self._orders.get(order.client_order_id)
        if tracked is None:   # e.g. a kernel restored from a snapshot
            tracked = _Tracked(order, venue_order_id=order.venue_order_id, placed=True, acked=True, followed=False)
            self._orders[order.client_order_id] = tracked
        if tracked.final:
            # It already ended (filled, cancelled, expired or rejected), so BingX would refuse
            # the cancel (80018 "order is already filled", 109414 "order not exist"): nothing is
            # sent, and the cancel is refused here, after any report of the end not yet handed over.
            self._cancel_rejected(tracked, f"order {order.client_order_id} is no longer working at BingX "
                                           f"({self._ending(tracked)})")
            return self._deliver(tracked)
        tracked.cancel_sent = True
        try:
            self._cancel(tracked)
        except BingXError as exc:
            # Reported as an event, never raised: the kernel gives every failed call for the
            # same order the same made-up event id, so a second failure would be refused as
            # a duplicate and leave the slot waiting for an answer that never comes.
            if not tracked.final:
                self._cancel_rejected(tracked, str(exc))
        return self._deliver(tracked)

    def _cancel(self, tracked: _Tracked) -> None:
        order = tracked.order
        # Routed by the order's own symbol and client order id, never by a trade id.
        params = {"symbol": order.asset, "clientOrderID": order.client_order_id}
        for attempt in (1, 2):
            try:
                data = self._request("DELETE", wire.ORDER, params, signed=True, bucket="cancel",
                                     what=f"the cancel of {order.client_order_id}")
                payload = _order_object(data, "cancel order")
            except (ExchangeRefused, RateLimited) as exc:
                # The order may have filled or ended meanwhile: learn its true state first.
                try:
                    self._refresh(tracked)
                except NotFollowed:
                    raise
                except BingXError as query_exc:
                    log.warning("BingX cancel %s refused, and the query failed: %s", order.client_order_id, query_exc)
                # Refused, even when the order has meanwhile filled or ended: the kernel hears
                # how it ended first (a fill racing the cancel wins), then the refusal. Only an
                # order BingX shows cancelled (by an earlier attempt) counts as cancelled.
                if not self._cancelled(tracked):
                    reason = f"BingX {exc.code}: {exc.msg}" if isinstance(exc, ExchangeRefused) else str(exc)
                    self._cancel_rejected(tracked, reason)
                return
            except UncertainOutcome as exc:
                self._refresh(tracked)   # if BingX cannot be read either, the order still counts as working
                if tracked.final:
                    if not self._cancelled(tracked):   # it filled or ended before the cancel reached it
                        self._cancel_rejected(tracked, f"{exc}; the order {order.client_order_id} is no longer "
                                                       f"working at BingX ({self._ending(tracked)})")
                    return
                if attempt == 2:
                    raise BingXError(f"{exc}; the order {order.client_order_id} is still working at BingX") from None
                continue
            self._absorb(tracked, payload)
            if not tracked.final:
                self._refresh(tracked)
            return

    def _cancel_rejected(self, tracked: _Tracked, reason: str) -> None:
        # Each refusal is news, in this process or a later one: a count kept per process
        # started again at 1 after a restart, and the kernel took the new refusal for the
        # old one (a duplicate), leaving the slot waiting for a cancel that never came.
        self._event(tracked, "CANCEL_REJECT", f"cancel-rejected:{uuid.uuid4().hex[:16]}", reason=reason)

    @staticmethod
    def _cancelled(tracked: _Tracked) -> bool:
        """Whether the order was reported cancelled at our request (CANCEL_ACK)."""
        return any(e.kind == "CANCEL_ACK" for e in tracked.events)

    @staticmethod
    def _ending(tracked: _Tracked) -> str:
        """How an order that is no longer working ended, in a word."""
        words = {"FULL_FILL": "filled", "CANCEL_ACK": "cancelled", "EXPIRED": "expired", "REJECT": "rejected"}
        return next((words[e.kind] for e in reversed(tracked.events) if e.kind in words), "ended")

    @_locked
    def resume(self, order: Order, applied: dita.OrderProgress) -> None:
        """Follows an order a rebuilt kernel (``Kernel.recover`` / ``Kernel.restore``) still
        considers working, starting from what that kernel already applied of it: BingX
        reports cumulative figures, and the fills to report are what goes beyond these.
        Whether BingX has the order at all is not known yet (the process may have died
        between journaling it and sending it), so it is settled like a lost answer: found,
        it is followed; still absent after ``recvWindow``, it is reported as never placed."""
        now = self._now_ms()
        self._orders[order.client_order_id] = _Tracked(
            order, venue_order_id=order.venue_order_id, followed=True, unresolved=True, sent_ms=now,
            cum=applied.filled_size, value=applied.filled_value, fees=applied.fees)

    @_locked
    def query(self, order: Order) -> list[VenueEvent]:
        """Every event of the order so far (its history as this venue reported it, brought
        up to date by an order query by client order id). Ids are stable; ``poll`` may
        report the newest ones again and the kernel applies each once."""
        tracked = self._orders.get(order.client_order_id)
        new = tracked is None
        if new:   # not sent through this venue (a restored kernel): follow it if possible
            tracked = _Tracked(order, venue_order_id=order.venue_order_id, followed=False)
            self._orders[order.client_order_id] = tracked
        if not tracked.final:
            try:
                self._refresh(tracked)
            except ExchangeRefused as exc:
                if new:
                    del self._orders[order.client_order_id]   # nothing to follow
                if exc.code not in NOT_FOUND_CODES:
                    raise
                return list(tracked.events)   # BingX has no such order
            except BaseException:
                if new:
                    del self._orders[order.client_order_id]
                raise
        return list(tracked.events)

    @_locked
    def poll(self) -> list[VenueEvent]:
        """New events of every order this venue follows: one open-orders request, plus one
        query per order that is no longer open. A failure never holds back the events
        already gathered: they are returned (the failure is logged and retried next poll);
        with nothing to return, the failure is raised.

        With the stream on, what the stream brought since the last call is returned too,
        and REST is asked only about the live orders the stream does not vouch for (see
        :meth:`_needs_rest`); about all of them when the stream is down or the last full
        check is ``stream_check_interval`` old."""
        now = self._now_ms()
        for tracked in list(self._orders.values()):
            if tracked.unresolved:
                self._settle(tracked, now)
        errors: list[BingXError] = []
        live = [t for t in self._orders.values() if t.placed and not t.final and t.followed]
        full = not self.stream or not self._stream_up or \
            time.monotonic() - self._last_full_check >= self.stream_check_interval
        check = live if full else [t for t in live if self._needs_rest(t)]
        if check:
            # The connection open now (the lock keeps it from changing until this poll ends)
            # carries every change after these answers: the orders asked about are followed
            # by it from here on.
            epoch = self._stream_epoch if self._stream_up else None
            started = time.monotonic()
            try:
                by_id, by_coid = self._open_orders()
            except BingXError as exc:
                errors.append(exc)
                check = []
            else:
                if full:
                    self._last_full_check = started
            for tracked in check:
                payload = by_id.get(tracked.venue_order_id) or by_coid.get(tracked.order.client_order_id.lower())
                try:
                    if payload is not None:
                        self._absorb(tracked, payload)
                    else:   # no longer open: one query tells how it ended
                        self._refresh(tracked)
                except BingXError as exc:
                    errors.append(exc)
                else:
                    tracked.stream_epoch = epoch
        out = []
        for tracked in self._orders.values():
            out += self._deliver(tracked)
        if errors and not out:
            raise errors[0] if len(errors) == 1 else BingXError("; ".join(str(e) for e in errors))
        for exc in errors:
            log.warning("BingX poll: %s (retried on the next poll)", exc)
        return out

    def _open_orders(self) -> tuple[dict, dict]:
        """Open orders by order id and by (lower-case) client order id."""
        data = self._request("GET", wire.OPEN_ORDERS, {}, signed=True, bucket="open_orders", what="open orders")
        orders = data.get("orders") if isinstance(data, dict) else None
        if not isinstance(orders, list):
            raise BadResponse(f"BingX open orders: data.orders must be a list, got {data!r:.200}")
        by_id, by_coid = {}, {}
        for i, payload in enumerate(orders):
            if not isinstance(payload, dict):
                raise BadResponse(f"BingX open orders: orders[{i}] must be an object, got {payload!r:.100}")
            by_id[_order_id(payload, f"open orders[{i}]")] = payload
            coid = payload.get("clientOrderId") or payload.get("clientOrderID")
            if isinstance(coid, str) and coid:
                by_coid[coid.lower()] = payload
        return by_id, by_coid

    def _settle(self, tracked: _Tracked, now_ms: int) -> None:
        """A place whose outcome is unknown: the order once BingX shows it, or a REJECT once
        no request of ours can be carried out any more (BingX drops one older than recvWindow)."""
        state = self._resolve(tracked, attempts=1)
        if state == FOUND:
            tracked.unresolved = False
        if state not in (NOT_FOUND, FOREIGN):
            return
        if now_ms <= tracked.sent_ms + self.recv_window + 1000:
            return
        tracked.unresolved = False
        tracked.final = True
        # Left undelivered: poll() hands it to the kernel with the other new events.
        self._event(tracked, "REJECT", "lost", reason=(tracked.lost_because + "; " if tracked.lost_because else "")
                    + f"the order never reached BingX: no order {tracked.order.client_order_id} "
                    f"{self.recv_window} ms after it was sent")

    # ------------------------------------------------------------------ order state -> events

    def _resolve(self, tracked: _Tracked, attempts: int = 3) -> str:
        """Asks BingX for the order by client order id: FOUND (and absorbed), NOT_FOUND,
        FOREIGN (an order with that id that is not the one sent), or UNKNOWN when BingX
        cannot be asked."""
        for i in range(attempts):
            try:
                payload = self._fetch(tracked)
                if not tracked.placed and not self._is_ours(tracked, payload):
                    return FOREIGN
                self._absorb(tracked, payload)
            except ExchangeRefused as exc:
                if exc.code in NOT_FOUND_CODES:
                    return NOT_FOUND
                log.warning("BingX query of %s: %s", tracked.order.client_order_id, exc)
            except (UncertainOutcome, RateLimited) as exc:
                log.warning("BingX query of %s: %s", tracked.order.client_order_id, exc)
            else:
                return FOUND
            if i + 1 < attempts:
                time.sleep(self._backoff(i + 1))
        return UNKNOWN

    def _fetch(self, tracked: _Tracked) -> dict:
        """One order query by client order id."""
        data = self._request("GET", wire.ORDER, {"symbol": tracked.order.asset,
                                                 "clientOrderId": tracked.order.client_order_id},
                             signed=True, bucket="query", what=f"the query of {tracked.order.client_order_id}")
        return _order_object(data, "query order")

    def _refresh(self, tracked: _Tracked) -> None:
        """One order query by client order id, absorbed."""
        self._absorb(tracked, self._fetch(tracked))

    @staticmethod
    def _is_ours(tracked: _Tracked, payload: Mapping) -> bool:
        """Whether an order found under our client order id is the one this venue sent, not
        an older one that used the same id (BingX keeps ids unique per account).

        BingX truncates a quantity or price finer than the contract's precision and still
        places the order (BINGX.md §2.1), and the contracts are cached here: after a precision
        change the order shows the sent figures truncated. That is still ours; anything
        larger, or not a truncation of what was sent, is not."""
        order = tracked.order
        try:
            same = (payload.get("symbol") == order.asset and payload.get("side") == order.side
                    and payload.get("type") == order.order_type
                    and _truncation_of(order.quantity, wire.to_decimal(payload.get("origQty"), "origQty")))
            if same and order.order_type == "LIMIT" and order.limit_price is not None \
                    and payload.get("price") not in (None, ""):
                same = _truncation_of(dita.types.to_decimal(order.limit_price, "limit_price"),
                                      wire.to_decimal(payload.get("price"), "price"))
        except ValueError:
            return True   # unreadable: _absorb reports it
        created = payload.get("time")
        if same and isinstance(created, int) and tracked.first_sent_ms:
            same = created >= tracked.first_sent_ms - CLOCK_MARGIN_MS
        return same

    def _absorb(self, tracked: _Tracked, payload: Mapping) -> None:
        """Appends to the order's history the events that ``payload`` (a BingX order object)
        adds to what was already reported."""
        what = f"order {tracked.order.client_order_id}"
        try:
            venue_order_id = _order_id(payload, what)
            status = payload.get("status")
            if not isinstance(status, str):
                raise ValueError(f"status must be a string, got {status!r}")
            cum = wire.to_decimal(payload.get("executedQty", "0"), "executedQty")
            timestamp = payload.get("updateTime")
            if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, (int, str))):
                raise ValueError(f"updateTime must be an integer, got {timestamp!r}")
        except ValueError as exc:
            raise BadResponse(f"BingX {what}: {exc}") from None
        if not tracked.followed:
            if cum > 0:
                avg = payload.get("avgPrice")
                raise NotFollowed(
                    f"BingX order {tracked.order.client_order_id} was not placed through this venue (a kernel "
                    f"restored from a snapshot?) and BingX has filled {wire.plain(cum)} of it at average price "
                    f"{avg}; which of that the kernel already applied is unknown, so no fill is reported. "
                    "Hint: reconcile the slot with these figures (Kernel.reconcile)")
            tracked.followed = True   # nothing filled yet: every fill from now on is new
        if tracked.venue_order_id is None:
            tracked.venue_order_id = venue_order_id
        elif tracked.venue_order_id != venue_order_id:
            raise BadResponse(f"BingX {what}: order id {venue_order_id} where {tracked.venue_order_id} was reported")
        tracked.placed = True
        tracked.unresolved = False
        self._check_precision(tracked, payload)
        if not tracked.acked and status != "FAILED":
            tracked.acked = True
            self._event(tracked, "ORDER_ACK", "ack", timestamp=timestamp)
        if cum < tracked.cum:
            raise BadResponse(f"BingX {what}: executedQty went down from {tracked.cum} to {cum}")
        if cum > tracked.order.quantity:
            raise BadResponse(f"BingX {what}: executedQty {cum} exceeds the order quantity {tracked.order.quantity}")
        if cum > tracked.cum:
            self._fill(tracked, payload, cum, timestamp)
        if status in FINAL_STATUSES:
            tracked.final = True
            if status == "FILLED" and tracked.cum < tracked.order.quantity:
                # Ended short of its quantity (a reduce-only order trimmed to the position, say):
                # the rest will never fill, and the slot must hear that the order ended.
                self._event(tracked, "EXPIRED", "expired", reason=f"BingX reports the order FILLED with "
                            f"{wire.plain(tracked.cum)} of {wire.plain(tracked.order.quantity)} executed",
                            timestamp=timestamp)
            elif status in ("CANCELLED", "CANCELED"):
                # Ended by our cancel, or by BingX (an IOC/FOK remainder, a reduce-only trim).
                if tracked.cancel_sent:
                    self._event(tracked, "CANCEL_ACK", "cancelled", reason="cancelled", timestamp=timestamp)
                else:
                    self._event(tracked, "EXPIRED", "expired", reason="cancelled by BingX", timestamp=timestamp)
            elif status == "EXPIRED":
                self._event(tracked, "EXPIRED", "expired", reason="expired", timestamp=timestamp)
            elif status == "FAILED":
                self._event(tracked, "REJECT", "failed", reason="BingX reports the order FAILED", timestamp=timestamp)

    def _check_precision(self, tracked: _Tracked, payload: Mapping) -> None:
        """An order shown with less than was sent was truncated by BingX (BINGX.md §2.1): the
        cached contracts are out of date, and are fetched again before the next order."""
        try:
            shown = wire.to_decimal(payload.get("origQty"), "origQty")
        except ValueError:
            return
        if shown < tracked.order.quantity and self._contracts is not None:
            log.warning("BingX shows order %s with quantity %s where %s was sent (truncated: the contract's "
                        "precision changed?); the contracts will be loaded again", tracked.order.client_order_id,
                        wire.plain(shown), wire.plain(tracked.order.quantity))
            self._contracts = None

    def _fill(self, tracked: _Tracked, payload: Mapping, cum: Decimal, timestamp) -> None:
        what = f"order {tracked.order.client_order_id}"
        try:
            avg = wire.to_decimal(payload.get("avgPrice") or "0", "avgPrice")
            cum_quote = payload.get("cumQuote")
            value = wire.to_decimal(cum_quote, "cumQuote") if cum_quote not in (None, "") else Decimal(0)
            commission = payload.get("commission")
            fees = -wire.to_decimal(commission, "commission") if commission not in (None, "") else tracked.fees
        except ValueError as exc:
            raise BadResponse(f"BingX {what}: {exc}") from None
        if value <= 0:
            # cumQuote (the exact traded value) is not always filled in; the average price is.
            value = avg * cum
        delta = cum - tracked.cum
        traded = value - tracked.value
        if traded <= 0:
            raise BadResponse(f"BingX {what}: executedQty rose to {cum} but the traded value did not "
                              f"(avgPrice {avg}, cumQuote {cum_quote!r})")
        fee = fees - tracked.fees
        kind = "FULL_FILL" if cum == tracked.order.quantity else "PARTIALLY_FILLED"
        # Fills BingX reports together come as one change of the cumulative figures, whose
        # average price can be a repeating decimal (179.14 / 0.003). Rounded, it changed the
        # money by up to half a unit of the 12th place times the size (DOGE: 1e-6 per million
        # coins). So the change is reported as two fills whose values are exact and add up to
        # the traded value: all but one size step at the average rounded to 12 places, and one
        # step at the price that makes up the rest (dividing by a power of ten is exact).
        # Their ids are the cumulative quantities after each, so a poll that sees the same
        # figures again, or a venue resumed between the two, derives the same events.
        first = None
        with localcontext() as ctx:
            ctx.prec = 100
            ctx.clear_flags()
            price = traded / delta
            if ctx.flags[Inexact]:
                step = Decimal(1).scaleb(min(delta.as_tuple().exponent, 0))   # the quantity's own unit
                # The last step carries the first part's rounding times its size in steps:
                # with a price of 1e-5 and 90 million coins, 12 places put it at 3.4 times
                # the market. So the first price takes as many places as it needs (up to
                # what a decimal holds) for the last one to stay within a billionth of the
                # average; failing that, the closest.
                best = None
                for places in range(12, 29):
                    p1 = price.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
                    p2 = (traded - p1 * (delta - step)) / step
                    if p1 <= 0 or p2 <= 0 or not _holdable(p1) or not _holdable(p2):
                        continue
                    off = abs(p2 - price)
                    if best is None or off < best[0]:
                        best = (off, p1, p2)
                    if off <= price * SPLIT_TOLERANCE:
                        break
                if best is not None:
                    first, price = (delta - step, best[1]), best[2]
                else:   # no split a decimal holds: the average, rounded
                    price = price.quantize(PRICE_PLACES, rounding=ROUND_HALF_EVEN)
        if first is not None:
            size, p1 = first
            self._event(tracked, "PARTIALLY_FILLED", f"fill:{wire.normal(tracked.cum + size)}", filled_size=size,
                        fill_price=p1, fee=fee, timestamp=timestamp)
            delta, fee = delta - size, Decimal(0)   # the fee went with the first part
        tracked.cum, tracked.value, tracked.fees = cum, value, fees
        self._event(tracked, kind, f"fill:{wire.normal(cum)}", filled_size=delta, fill_price=price, fee=fee,
                    timestamp=timestamp)

    def _event(self, tracked: _Tracked, kind: str, suffix: str, **fields) -> VenueEvent:
        ref = tracked.venue_order_id or tracked.order.client_order_id
        event = VenueEvent(kind, f"bingx:{ref}:{suffix}", tracked.order.client_order_id,
                           venue_order_id=tracked.venue_order_id, **fields)
        tracked.events.append(event)
        return event

    def _reject(self, tracked: _Tracked, suffix: str, reason: str) -> list[VenueEvent]:
        tracked.final = True
        self._event(tracked, "REJECT", suffix, reason=reason)
        return self._deliver(tracked)

    @staticmethod
    def _deliver(tracked: _Tracked) -> list[VenueEvent]:
        out = tracked.events[tracked.delivered:]
        tracked.delivered = len(tracked.events)
        return out

    # ------------------------------------------------------------------ the user data stream

    def _needs_rest(self, tracked: _Tracked) -> bool:
        """Whether ``poll()`` must ask REST about a live order: unless the connection open now
        has carried every change of it since the venue last knew its whole state (it was open
        before the order was placed, or before the last REST answer about it), and no gap
        was seen since."""
        return not (self._stream_up and tracked.stream_epoch == self._stream_epoch)

    def _mark_gap(self, tracked: _Tracked | None, why: str) -> None:
        """The stream cannot vouch for ``tracked`` (None: for any order): REST is asked."""
        self._stream_counts["gaps"] += 1
        log.warning("BingX stream: %s; %s is checked over REST", why,
                    f"order {tracked.order.client_order_id}" if tracked else "every live order")
        for t in ([tracked] if tracked is not None else self._orders.values()):
            t.stream_epoch = None

    def stream_status(self) -> dict:
        """The stream's health, for operators and tests (never the listenKey): ``enabled``,
        ``connected``, ``connections`` (opened so far), ``listen_keys`` (made so far),
        ``extensions``, ``gaps`` (times REST was called in for the stream) and ``last_error``."""
        return {"enabled": self.stream, "connected": self._stream_up, "connections": self._stream_epoch,
                **self._stream_counts, "last_error": self._stream_error}

    def _listen_key_call(self, method: str, key: _Hidden | None = None) -> str | None:
        """POST (a new key, returned), PUT (extend) or DELETE ``key``: signed, in the query, as
        CCXT sends them (BINGX.md §2.9). A key BingX does not know (HTTP 404) raises
        :class:`ExchangeRefused` with code 404. Messages never carry the key."""
        what = {"POST": "creating a listenKey", "PUT": "extending the listenKey",
                "DELETE": "deleting the listenKey"}[method]
        if self.sync_time and self._offset_ms is None:
            self._sync()
        query, headers, _ = self._wire_query({"listenKey": key.value} if key else {}, signed=True)
        failure = None
        try:
            response = self._client.request(method, self.base_url + wire.LISTEN_KEY + "?" + query, headers=headers)
        except httpx.TimeoutException as exc:
            failure = f"no answer within {self.timeout:g} s ({type(exc).__name__})"
        except httpx.TransportError as exc:
            failure = f"connection failed: {type(exc).__name__}"
        if failure is not None:   # raised outside the except block: httpx's exception holds the URL
            raise TransportFailure(f"BingX {method} {wire.LISTEN_KEY} ({what}): {failure}")
        status = response.status_code
        try:
            body = json.loads(response.text) if response.text.strip() else None
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"] != 0:
            raise ExchangeRefused(body["code"], _redact(str(body.get("msg"))), what)
        if status != 200:
            raise ExchangeRefused(status, f"HTTP {status} {response.reason_phrase}", what)
        if method != "POST":
            return None
        found = body.get("listenKey") if isinstance(body, dict) else None
        if isinstance(body, dict) and not isinstance(found, str):   # some gateways wrap it in data
            found = (body.get("data") or {}).get("listenKey") if isinstance(body.get("data"), dict) else None
        if not isinstance(found, str) or not re.fullmatch(r"[A-Za-z0-9_-]{8,256}", found):
            raise BadResponse(f"BingX POST {wire.LISTEN_KEY} ({what}): HTTP 200 without a listenKey")
        return found

    def _stream_main(self) -> None:
        """The stream thread: a key, a connection, its frames; after a drop, again after a
        backoff (doubling per failure up to STREAM_MAX_BACKOFF). Ends when close() asks."""
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        backoff = self.stream_backoff
        while not self._stream_stop.is_set():
            try:
                if self._listen_key is None:
                    self._listen_key = _Hidden(self._listen_key_call("POST"))
                    self._stream_counts["listen_keys"] += 1
                    self._next_extend = time.monotonic() + self.stream_keepalive
                # No protocol-level pings: BingX keeps the connection alive with its own "Ping".
                with connect(f"{self.stream_url}?listenKey={self._listen_key.value}", open_timeout=self.timeout,
                             close_timeout=min(self.timeout, 2.0), ping_interval=None, logger=ws_log) as ws:
                    backoff = self.stream_backoff
                    self._stream_error = self._stream_read(ws) or ""
            except InvalidStatus as exc:
                if exc.response.status_code == 404:   # the key is gone (expired, deleted): a new one
                    self._listen_key = None
                self._stream_error = _redact(f"the connection was refused: {exc}")
            except (BingXError, WebSocketException, OSError) as exc:   # TimeoutError is an OSError
                self._stream_error = _redact(f"connecting failed: {type(exc).__name__}: {exc}")
            except Exception as exc:   # a bug here must not end the thread: REST takes over, then a new try
                self._stream_error = _redact(f"unexpected {type(exc).__name__}: {exc}")
                log.error("BingX stream: %s", self._stream_error)
            if self._stream_stop.is_set():
                break
            if self._stream_error:
                log.warning("BingX stream: %s; reconnecting in %.2g s", self._stream_error, backoff)
            self._stream_stop.wait(backoff)
            backoff = min(backoff * 2, STREAM_MAX_BACKOFF)

    def _stream_read(self, ws) -> str | None:
        """Reads one connection until it ends; returns why it ended (None: close() asked)."""
        from websockets.exceptions import ConnectionClosed

        with self._lock:
            self._stream_up = True
            self._stream_epoch += 1
        silent_until = time.monotonic() + STREAM_IDLE_TIMEOUT
        try:
            while not self._stream_stop.is_set():
                now = time.monotonic()
                if now >= self._next_extend:
                    why = self._extend_key()
                    if why:
                        return why
                if now >= silent_until:
                    return f"no frame for {STREAM_IDLE_TIMEOUT:g} s"
                wait = min(self._next_extend, silent_until) - now
                try:
                    message = ws.recv(timeout=max(min(wait, STREAM_STOP_CHECK), 0.0))
                    expired = self._stream_message(ws, message) == _KEY_EXPIRED
                except TimeoutError:
                    continue
                except ConnectionClosed as exc:   # also while answering a Ping
                    return _redact(f"the connection closed: {exc}")
                # Counted from the end of the handling: waiting for the lock is not silence.
                silent_until = time.monotonic() + STREAM_IDLE_TIMEOUT
                if expired:
                    self._listen_key = None
                    return "the listenKey expired"
            return None
        finally:
            with self._lock:
                self._stream_up = False
            ws.close()

    def _extend_key(self) -> str | None:
        """PUT the key (every ``stream_keepalive`` s); returns why the connection must end."""
        try:
            self._listen_key_call("PUT", self._listen_key)
        except ExchangeRefused as exc:
            if exc.code == 404:
                self._listen_key = None
                return "BingX no longer knows the listenKey (HTTP 404)"
            failure = exc
        except BingXError as exc:
            failure = exc
        else:
            self._stream_counts["extensions"] += 1
            self._next_extend = time.monotonic() + self.stream_keepalive
            return None
        log.warning("BingX stream: %s; tried again shortly", failure)
        self._next_extend = time.monotonic() + min(self.stream_keepalive, STREAM_EXTEND_RETRY)
        return None

    def _stream_message(self, ws, message: str | bytes) -> str | None:
        """One frame: gzip JSON (or plain text). ``Ping`` is answered ``Pong``; an order's
        update is absorbed under the lock; one that cannot be read calls REST in for every
        live order. Returns _KEY_EXPIRED after ``listenKeyExpired``."""
        try:
            text = gzip.decompress(message).decode() if isinstance(message, bytes) else message
            event = None if text.strip() in ("Ping", "Pong") else json.loads(text, parse_float=Decimal)
            if event is not None and not isinstance(event, dict):
                raise ValueError(f"not an object: {type(event).__name__}")
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as exc:
            with self._lock:
                self._mark_gap(None, f"a frame could not be read ({type(exc).__name__})")
            return None
        if event is None:
            if text.strip() == "Ping":
                ws.send("Pong")
            return None
        kind = event.get("e")
        if kind == "listenKeyExpired":
            return _KEY_EXPIRED
        if kind == "ORDER_TRADE_UPDATE":
            with self._lock:
                self._stream_order(event.get("o"))
        return None

    def _stream_order(self, o: Any) -> None:
        """An ``ORDER_TRADE_UPDATE`` (its ``o``), as REST's cumulative figures, through _absorb.
        Under the lock. Only a TRADE whose ``z`` is what was already reported plus its ``l``
        adds a fill (its ``l`` x ``L`` to the traded value, its ``n`` to the commission); a
        ``z`` below that is old news (REST was first); anything else is a gap: REST is asked."""
        coid = o.get("c") if isinstance(o, dict) else None
        tracked = self._orders.get(coid) if isinstance(coid, str) else None
        if tracked is None and isinstance(coid, str):
            tracked = next((t for t in self._orders.values() if t.order.client_order_id.lower() == coid.lower()), None)
        if tracked is None:
            if not isinstance(coid, str):
                self._mark_gap(None, "an order update without a client order id")
            return   # not an order of this venue (another kernel on the account)
        if tracked.final or not tracked.placed or not tracked.followed:
            return   # ended, or settled over REST (a lost place answer, a restored kernel)
        try:
            order_id = _order_id({"orderId": o.get("i")}, "stream order update")
            if order_id != tracked.venue_order_id:
                return   # another order that used the same client order id
            status, execution = o.get("X"), o.get("x")
            if not isinstance(status, str) or not isinstance(execution, str):
                raise ValueError(f"x/X must be strings, got {execution!r}/{status!r}")
            z = _trim(wire.to_decimal(o.get("z"), "z"))
            last = _trim(wire.to_decimal(o.get("l") or 0, "l"))
            if z < tracked.cum:
                return   # REST already reported more: this update is older than what is known
            value, fees = tracked.value, tracked.fees
            if z > tracked.cum:
                if not (execution == "TRADE" and last > 0 and z == tracked.cum + last):
                    self._mark_gap(tracked, f"order {coid}: {execution} with z {wire.plain(z)} after "
                                            f"{wire.plain(tracked.cum)} and l {wire.plain(last)}")
                    return
                value += last * _trim(wire.to_decimal(o.get("L"), "L"))
                fees -= _trim(wire.to_decimal(o.get("n") or 0, "n"))   # n is negative when paid
            payload = {"orderId": o.get("i"), "status": status, "executedQty": z, "cumQuote": value,
                       "commission": -fees, "avgPrice": o.get("ap"), "origQty": o.get("q"),
                       "updateTime": o.get("T")}
        except (ValueError, BadResponse) as exc:
            self._mark_gap(tracked, f"order {coid}: an update that cannot be read ({exc})")
            return
        try:
            self._absorb(tracked, payload)
        except BingXError as exc:
            self._mark_gap(tracked, f"order {coid}: {exc}")

    # ------------------------------------------------------------------ account and market reads

    def mark_price(self, symbol: str) -> Decimal:
        """The mark price of ``symbol`` (``quote/premiumIndex``)."""
        data = self._request("GET", wire.PREMIUM_INDEX, {"symbol": symbol}, signed=False, bucket="market",
                             what=f"the mark price of {symbol}")
        if isinstance(data, list):
            data = next((d for d in data if isinstance(d, dict) and d.get("symbol") == symbol), None)
        if not isinstance(data, dict):
            raise BadResponse(f"BingX premiumIndex for {symbol}: expected an object, got {data!r:.200}")
        try:
            return wire.to_decimal(data.get("markPrice"), "markPrice")
        except ValueError as exc:
            raise BadResponse(f"BingX premiumIndex for {symbol}: {exc}") from None

    def _mark_price_or_none(self, symbol: str) -> Decimal | None:
        try:
            return self.mark_price(symbol)
        except BingXError as exc:   # the exchange still checks the minimum value itself
            log.warning("BingX mark price of %s unavailable, minimum order value not checked here: %s", symbol, exc)
            return None

    def balance(self) -> dict[str, dict[str, Decimal]]:
        """Asset -> balance fields (``balance``, ``equity``, ``availableMargin``, ...) as decimals."""
        data = self._request("GET", wire.BALANCE, {}, signed=True, bucket="balance", what="the balance")
        if not isinstance(data, list):
            raise BadResponse(f"BingX balance: data must be a list, got {data!r:.200}")
        out = {}
        for i, entry in enumerate(data):
            if not isinstance(entry, dict) or not isinstance(entry.get("asset"), str):
                raise BadResponse(f"BingX balance: data[{i}] must be an object with an asset, got {entry!r:.200}")
            try:
                out[entry["asset"]] = {k: wire.to_decimal(v, k) for k, v in entry.items()
                                       if k not in ("asset", "userId", "shortUid") and v not in (None, "")}
            except ValueError as exc:
                raise BadResponse(f"BingX balance {entry['asset']}: {exc}") from None
        return out

    def positions(self, symbol: str | None = None) -> list[dict]:
        """Open positions as BingX reports them (decimal strings left as sent)."""
        params = {"symbol": symbol} if symbol else {}
        data = self._request("GET", wire.POSITIONS, params, signed=True, bucket="positions", what="the positions")
        if not isinstance(data, list) or not all(isinstance(p, dict) for p in data):
            raise BadResponse(f"BingX positions: data must be a list of objects, got {data!r:.200}")
        return data

    def server_time(self) -> int:
        data = self._request("GET", wire.SERVER_TIME, {}, signed=False, bucket="market", what="the server time")
        t = data.get("serverTime") if isinstance(data, dict) else None
        if isinstance(t, bool) or not isinstance(t, int):
            raise BadResponse(f"BingX server time: data.serverTime must be an integer, got {data!r:.200}")
        return t

    # ------------------------------------------------------------------ transport

    def _now_ms(self) -> int:
        return int(time.time() * 1000) + (self._offset_ms or 0)

    def _sync(self) -> None:
        before = time.time() * 1000
        try:
            server = self.server_time()
        except BingXError as exc:
            log.warning("BingX server time unavailable, using the local clock: %s", exc)
            self._offset_ms = 0
            return
        self._offset_ms = int(server - (before + time.time() * 1000) / 2)

    def _backoff(self, attempt: int, response: httpx.Response | None = None) -> float:
        delay = min(self.retry_backoff * 2 ** (attempt - 1), 2.0)
        if response is not None:
            hinted = response.headers.get("Retry-After")
            if hinted and hinted.replace(".", "", 1).isdigit():
                delay = max(delay, min(float(hinted), 5.0))
        return delay

    def _pace(self, bucket: str) -> None:
        if not self.pace:
            return
        limit, window = RATE_BUCKETS[bucket]
        with self._lock:
            sent = self._sent[bucket]
            now = time.monotonic()
            while sent and now - sent[0] >= window + PACE_SLACK:
                sent.popleft()
            if len(sent) >= limit:
                time.sleep(sent[0] + window + PACE_SLACK - now)
                sent.popleft()
            sent.append(time.monotonic())

    def _wire_query(self, params: Mapping[str, Any], signed: bool) -> tuple[str, dict, list]:
        """The query string (with ``timestamp``, ``recvWindow`` and ``signature`` when signed,
        BINGX.md §1), the headers, and the signed pairs."""
        items = wire.sorted_items(params)
        if not signed:
            return wire.encoded(items), {}, items
        items = sorted(items + [("timestamp", str(self._now_ms())), ("recvWindow", str(self.recv_window))])
        return (wire.encoded(items) + "&signature=" + self._creds.sign(wire.canonical(items)), self._creds.headers(),
                items)

    def _request(self, method: str, path: str, params: Mapping[str, Any], *, signed: bool, bucket: str,
                 what: str, tracked: _Tracked | None = None) -> Any:
        """One BingX call: returns the envelope's ``data`` or raises a :class:`BingXError`.
        Throttled (HTTP 429) answers are retried here (not carried out), and so are busy
        codes except on a place (``tracked``), where they are raised as :class:`Busy`: the
        order may have been placed. Anything that may have been carried out is raised for the
        caller to resolve."""
        if signed and self.sync_time and self._offset_ms is None:
            self._sync()
        resynced = False
        attempt = 0
        while True:
            attempt += 1
            self._pace(bucket)
            query, headers, items = self._wire_query(params, signed)
            if signed and tracked is not None:
                tracked.sent_ms = int(dict(items)["timestamp"])
                tracked.first_sent_ms = tracked.first_sent_ms or tracked.sent_ms
                tracked.sent_mono = time.monotonic()
            url = self.base_url + path + ("?" + query if query else "")
            log.debug("BingX %s %s %s", method, path, wire.canonical(items))
            failure = None
            try:
                response = self._client.request(method, url, headers=headers)
            except httpx.TimeoutException as exc:
                failure = f"no answer within {self.timeout:g} s ({type(exc).__name__})"
            except httpx.TransportError as exc:
                failure = f"connection failed: {type(exc).__name__}: {exc}"
            if failure is not None:
                # Raised outside the except block: httpx's exception holds the request, with
                # the API key header, and must not ride along as __context__.
                raise TransportFailure(f"BingX {method} {path} ({what}): {failure}")
            status = response.status_code
            if status == 418:
                # Banned for sending on after 429s (BINGX.md §4: about 5 minutes); retrying only
                # prolongs the ban.
                raise RateLimited(f"BingX {method} {path} ({what}): HTTP 418: this IP is banned for sending "
                                  "after rate-limit answers (about 5 minutes); not retried")
            if status == 429:
                if attempt <= self.max_retries:
                    self.retries += 1
                    log.info("BingX %s %s throttled (HTTP %d); retry %d after backoff", method, path, status, attempt)
                    time.sleep(self._backoff(attempt, response))
                    continue
                raise RateLimited(f"BingX {method} {path} ({what}): still throttled (HTTP {status}) "
                                  f"after {self.max_retries} retries")
            if status >= 500:
                raise UncertainOutcome(f"BingX {method} {path} ({what}): HTTP {status} {response.reason_phrase}: "
                                       f"{_snippet(response.text)}")
            try:
                body = json.loads(response.text, parse_float=Decimal)
            except ValueError:
                body = _NOT_JSON
            if 400 <= status < 500 and (body is _NOT_JSON or not isinstance(body, dict) or "code" not in body):
                # The gateway refused it (firewall 403, unknown path 404): nothing was carried out.
                raise ExchangeRefused(status, f"HTTP {status} {response.reason_phrase}: {_snippet(response.text)}", what)
            if body is _NOT_JSON:
                raise BadResponse(f"BingX {method} {path} ({what}): HTTP {status} with a body that is not JSON: "
                                  f"{_snippet(response.text)}")
            if not isinstance(body, dict) or "code" not in body:
                raise BadResponse(f"BingX {method} {path} ({what}): HTTP {status} without the code/msg/data "
                                  f"envelope: {_snippet(response.text)}")
            code = body["code"]
            if isinstance(code, str) and code.lstrip("-").isdigit():
                code = int(code)
            if isinstance(code, bool) or not isinstance(code, int):
                raise BadResponse(f"BingX {method} {path} ({what}): code must be an integer, got {code!r}")
            msg = body.get("msg")
            msg = msg if isinstance(msg, str) else json.dumps(msg, default=str)
            if code == 0 and status == 200:
                return body.get("data")
            if code == 80012 and re.search(r'"?Code"?\s*:\s*\d', msg):
                # 80012 wrapping another refusal ({"Code":101253,"Msg":"margin is not enough"},
                # BINGX.md §3): a refusal, not "busy".
                raise ExchangeRefused(code, msg, what)
            if (code in RATE_LIMIT_CODES or code in BUSY_CODES) and tracked is not None:
                # A place: "busy" may still have been carried out (fault 1 of the audit: it was,
                # the retry was refused as a duplicate and taken for another order). The caller
                # asks for the client order id before sending it again.
                raise Busy(f"BingX {method} {path} ({what}): code {code} {msg}")
            if code in RATE_LIMIT_CODES or code in BUSY_CODES:
                if attempt <= self.max_retries:
                    self.retries += 1
                    log.info("BingX %s %s: code %d %s; retry %d after backoff", method, path, code, msg, attempt)
                    time.sleep(self._backoff(attempt, response))
                    continue
                raise RateLimited(f"BingX {method} {path} ({what}): code {code} {msg} after {self.max_retries} retries")
            if code == TIMESTAMP_CODE and signed and not resynced:
                resynced = True   # refused for its timestamp, so not carried out: align the clock, once
                self._sync()
                continue
            if code == 0:
                raise ExchangeRefused(status, f"HTTP {status} {response.reason_phrase}", what)
            raise ExchangeRefused(code, msg, what)


# ------------------------------------------------------------------ parsing helpers


def _truncation_of(sent: Decimal, shown: Decimal) -> bool:
    """Whether ``shown`` is ``sent``, or ``sent`` truncated to fewer decimals (never more
    than was sent, never rounded up): how BingX shows an over-precise figure it accepted."""
    if shown == sent:
        return True
    if not 0 < shown < sent:
        return False
    decimals = max(-sent.normalize().as_tuple().exponent, 0)
    return any((sent / wire.step_of(n)).to_integral_value(rounding=ROUND_FLOOR) * wire.step_of(n) == shown
               for n in range(decimals))


def _trim(d: Decimal) -> Decimal:
    """``d`` without trailing zeros, in plain notation (the stream pads to 8 decimals)."""
    d = d.normalize()
    return d.quantize(Decimal(1)) if d.as_tuple().exponent > 0 else d


def _snippet(text: str, limit: int = 200) -> str:
    text = text.strip().replace("\n", " ")
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def _order_object(data: Any, what: str) -> dict:
    """``data.order`` of a place/cancel/query answer."""
    order = data.get("order") if isinstance(data, dict) else None
    if not isinstance(order, dict):
        raise BadResponse(f"BingX {what}: data.order must be an object, got {data!r:.200}")
    return order


def _order_id(payload: Mapping, what: str) -> str:
    """BingX order ids are integers beyond 2**53; JSON numbers or digit strings."""
    value = payload.get("orderId")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return str(int(value))
    raise BadResponse(f"BingX {what}: orderId must be a positive integer, got {value!r}")


def _parse_contract(raw: Any, index: int) -> Contract:
    if not isinstance(raw, dict) or not isinstance(raw.get("symbol"), str) or not raw["symbol"]:
        raise BadResponse(f"BingX contracts: data[{index}] must be an object with a symbol, got {raw!r:.200}")
    symbol = raw["symbol"]

    def integer(name: str, optional: bool = False) -> int | None:
        value = raw.get(name)
        if value in (None, "") and optional:
            return None
        try:
            number = wire.to_decimal(value, name)
        except ValueError as exc:
            raise BadResponse(f"BingX contract {symbol}: {exc}") from None
        if number != number.to_integral_value():
            shown = wire.plain(value) if isinstance(value, Decimal) else repr(value)   # as the JSON said it
            raise BadResponse(f"BingX contract {symbol}: {name} must be a whole number, got {shown}")
        return int(number)

    def number(name: str, optional: bool = False) -> Decimal | None:
        value = raw.get(name)
        if value in (None, "") and optional:
            return None
        try:
            result = wire.to_decimal(value, name)
        except ValueError as exc:
            raise BadResponse(f"BingX contract {symbol}: {exc}") from None
        if result < 0:
            raise BadResponse(f"BingX contract {symbol}: {name} must not be negative, got {value!r}")
        return result

    def boolean(name: str) -> bool:
        try:
            return wire.flag(raw.get(name, "true"), name)
        except ValueError as exc:
            raise BadResponse(f"BingX contract {symbol}: {exc}") from None

    pp, qp = integer("pricePrecision"), integer("quantityPrecision")
    for name, p in (("pricePrecision", pp), ("quantityPrecision", qp)):
        if not 0 <= p <= 18:
            raise BadResponse(f"BingX contract {symbol}: {name} must be between 0 and 18, got {p}")
    size_increment = wire.step_of(qp)
    min_quantity = number("tradeMinQuantity", optional=True) or size_increment
    min_notional = number("tradeMinUSDT", optional=True) or None
    return Contract(symbol=symbol, price_increment=wire.step_of(pp), size_increment=size_increment,
                    min_quantity=min_quantity, min_notional=min_notional,
                    api_open=boolean("apiStateOpen"), api_close=boolean("apiStateClose"),
                    status=integer("status", optional=True),
                    max_long_leverage=integer("maxLongLeverage", optional=True),
                    max_short_leverage=integer("maxShortLeverage", optional=True))
