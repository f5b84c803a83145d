"""A local BingX USDT-M perpetual exchange, faithful enough for an unmodified CCXT client.

It serves BingX's own paths, parameter names, envelopes, status spellings and error codes
(``BINGX.md``) over real HTTP on loopback, and checks what the exchange checks: the API key,
the HMAC signature (in every variant real clients send), the timestamp against
``recvWindow``, required parameters, minimum quantity and order value, duplicate client
order ids, margin, reduce-only and position-mode rules.

The market is a mark price per symbol that tests move with :meth:`BingXSimulator.set_price`
(each price is kept with its time: the ticker and klines are computed from them and from the
fills, which are the market's only trades).
MARKET orders fill at once at the mark price (taker fee); a LIMIT order at or through the
market fills at once (taker), otherwise it rests and fills at its own price (maker fee)
when a price move crosses it. ``liquidity`` caps how much trades per symbol on one move,
so partial fills happen. Positions and the USDT balance follow the fills.

The user data stream (BINGX.md §2.9) is served on the same port: listenKeys from
``/openApi/user/auth/userDataStream`` and a WebSocket at ``/swap-market?listenKey=<key>`` that
pushes every order and account change as gzip JSON (ccxt.pro's watch_* methods work on it).

Faults for tests: :meth:`BingXSimulator.inject` makes the next request(s) to an endpoint
fail in a chosen way (delay, dropped connection before or after the order is accepted,
HTTP 5xx, HTTP 429, malformed or mistyped body, an exchange error code, a fill racing a
cancel).

Use it as ``with BingXSimulator(api_key="k", api_secret="s") as sim: sim.base_url``, or run
``dita-bingx-sim --port 0 --api-key K --api-secret S`` (or ``dita bingx-sim``).
"""

from __future__ import annotations

import argparse
import base64
import collections
import gzip
import hashlib
import hmac
import importlib.resources
import itertools
import json
import logging
import secrets
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

import wsproto
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.utilities import ProtocolError

from dita_bingx import wire

log = logging.getLogger("dita_bingx.simulator")

DEFAULT_PRICES = {"BTC-USDT": "60000", "ETH-USDT": "3000", "TRX-USDT": "0.25", "XRP-USDT": "0.5",
                  "DOGE-USDT": "0.15", "ADA-USDT": "0.4"}
ORDER_TYPES = {"LIMIT", "MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRIGGER_LIMIT",
               "TRIGGER_MARKET", "TRAILING_STOP_MARKET", "TRAILING_TP_SL"}
TIME_IN_FORCE = {"GTC", "IOC", "FOK", "PostOnly"}
#: Documented per-UID rates (BINGX.md §4), per endpoint: (requests, window in seconds).
#: An endpoint not listed (BINGX.md gives no rate for it) gets DEFAULT_RATE.
RATE_LIMITS = {"place_order": (10, 1.0), "test_order": (10, 1.0), "cancel_order": (5, 1.0), "query_order": (5, 1.0),
               "open_orders": (5, 1.0), "open_order": (5, 1.0), "balance": (5, 1.0), "positions": (5, 1.0),
               "leverage": (5, 1.0), "cancel_all": (5, 1.0), "position_mode": (2, 1.0), "margin_type": (2, 1.0)}
DEFAULT_RATE = (10, 1.0)
PUBLIC_RATE = (500, 10.0)
#: How much earlier than a whole window a request may arrive and still count as keeping to
#: the rate. A client that spaces its requests exactly window/count apart by its own clock
#: reaches us a little unevenly: CCXT measures its spacing in whole milliseconds (so 199.x ms
#: passes for 200), and delivery and thread scheduling vary by a few ms. Without this slack
#: such a client was refused now and then. A steady client can gain at most this much per
#: window (5 per 0.95 s instead of 5 per 1 s); any burst above the count is still refused.
RATE_JITTER = 0.05

#: Decimals of the money figures, as BingX prints them (BINGX.md §2.4 sample: profit "0.0000",
#: commission "0.000000"; the balance and position captures it cites show 4 decimals too).
USDT_PLACES = 4      # balance, equity, margins, PnL, position value
FEE_PLACES = 6       # commission; each fill's fee is charged rounded to this, so the wallet,
                     # the order's commission and the fills' commissions add up exactly
RATIO_PLACES = 4     # pnlRatio
#: Market history kept for the ticker and klines (and trades for their volumes), per symbol.
HISTORY_LIMIT = 100_000
#: klines intervals (ms). Weekly candles start on Monday 00:00 UTC (the epoch was a Thursday).
KLINE_INTERVALS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
                   "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
                   "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000}
WEEK_OFFSET_MS = 4 * 86_400_000
DAY_MS = 86_400_000
#: The size shown in the order book at the mark price when a symbol's liquidity is unlimited:
#: BingX always shows a finite size, and this much (in USDT) is more than any order the
#: simulator would accept, which is what "unlimited" means here.
UNLIMITED_DEPTH_USDT = Decimal(10) ** 9
FAULTS = {"error", "429", "5xx", "http_error", "http_error_after_accept", "drop_before_accept", "drop_after_accept",
          "delay", "malformed", "malformed_after_accept", "wrong_types", "fill_before_cancel", "busy_after_accept"}
#: The "system busy" answer (BINGX.md §3). BINGX.md never says such an answer means the
#: request was not carried out, so the fault ``busy_after_accept`` sends it for one that was.
MSG_BUSY = "The current system is busy, please try again later"
#: BINGX.md §3: "The same order number is only allowed to be submitted once within 1 second."
DUPLICATE_WINDOW = 1.0
MSG_SAME_ORDER = "The same order number is only allowed to be submitted once within 1 second."
#: What a place answer holds: "full" adds status, avgPrice and executedQty (which BINGX.md
#: §2.2 says newer answers "may add"); "documented" is the documented answer alone.
PLACE_ANSWERS = ("full", "documented")

#: The user data stream (BINGX.md §2.9): the listenKey endpoints and the WebSocket path,
#: served on the same port as REST.
LISTEN_KEY_PATH = "/openApi/user/auth/userDataStream"
STREAM_PATH = "/swap-market"
#: Decimals of the stream's numbers (BINGX.md §2.9: ``"0.10000000"``).
STREAM_PLACES = 8
#: REST prints a resting order PENDING and a cancelled one with two L's; the stream says NEW
#: and CANCELED (BINGX.md §5, checklist item 5).
STREAM_STATUS = {"PENDING": "NEW", "CANCELLED": "CANCELED"}
#: The stream's keep-alive, a frame like every other (gzip).
PING_FRAME = gzip.compress(b"Ping", mtime=0)
#: RFC 6455: the value a server derives Sec-WebSocket-Accept from.
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: How long a stream waits for the client's Close after sending its own, and how long a
#: write to a client that stopped reading may block, in seconds.
STREAM_CLOSE_WAIT = 1.0
STREAM_SEND_TIMEOUT = 5.0

MSG_REDUCE_ONLY = ("The Reduce Only order can only decrease the position. Please adjust the order quantity "
                   "or cancel the Reduce Only setting.")
MSG_POST_ONLY = ("The Maker (Post Only) order ensures that the user is always the maker. If the order would "
                 "immediately match with available orders in the market, it will be canceled.")


class _Answer(Exception):
    """Ends a request early with an exchange error (HTTP 200, code != 0) or another status."""

    def __init__(self, code: int, msg: str, http_status: int = 200):
        self.code, self.msg, self.http_status = code, msg, http_status


def _invalid(msg: str) -> _Answer:
    return _Answer(80014, f"Invalid parameters, err: {msg}")


@dataclass
class _Bare:
    """A handler's answer sent as is, outside the ``{"code","msg","data"}`` envelope: the
    listenKey endpoints answer a bare ``{"listenKey": ...}`` or only an HTTP status."""
    status: int
    payload: dict | None = None


@dataclass
class _Close:
    """Queued on a stream: send a Close frame with this code and reason, then end."""
    code: int
    reason: str


class _Stream:
    """One user-data WebSocket connection. The exchange queues its frames here under the
    simulator's lock (:meth:`push`); the connection's own handler thread writes them out, so
    a slow client never holds up the exchange. A socket pair wakes that thread."""

    def __init__(self, listen_key: str):
        self.listen_key = listen_key
        self.outbox: collections.deque[bytes | _Close] = collections.deque()
        self.pongs = 0                       # "Pong" answers received
        self.done = threading.Event()        # set when the handler thread has let go
        self.wake, self._waker = socket.socketpair()
        self._waker.setblocking(False)

    def push(self, item: bytes | _Close) -> None:
        self.outbox.append(item)
        try:
            self._waker.send(b"\0")
        except OSError:   # the buffer is full (the thread is awake anyway) or it has ended
            pass

    def drain_wake(self) -> None:
        try:
            self.wake.recv(4096)
        except OSError:
            pass

    def release(self) -> None:
        self.wake.close()
        self._waker.close()
        self.done.set()


#: A route's "signed" flag for endpoints that need the API key but not a signature.
KEY_ONLY = "key-only"

#: A handler's answer with no ``data`` member (BingX sends only code and msg for some calls).
NO_DATA = object()


def _fixed(value: Decimal, places: int) -> str:
    """``value`` with exactly ``places`` decimals, half-up, and never ``-0.0000``."""
    q = value.quantize(wire.step_of(places), rounding=ROUND_HALF_UP)
    return wire.plain(q.copy_abs() if q.is_zero() else q)


def _round(value: Decimal, places: int) -> Decimal:
    """The number :func:`_fixed` prints, as a decimal (so sums of printed figures are exact)."""
    return Decimal(_fixed(value, places))


def _iso_utc(ms: int) -> str:
    """``2023-12-16T20:58:36.123Z``: BingX's ``filledTm`` (the capture in BINGX.md's sources
    has whole seconds; the simulator keeps the milliseconds it has)."""
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms % 1000:03d}Z"


def _iso_utc8(ms: int) -> str:
    """``2023-12-16T20:58:36.123+0800``: BingX's ``filledTime``, in UTC+8."""
    t = time.gmtime(ms // 1000 + 8 * 3600)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{ms % 1000:03d}+0800"


@dataclass
class _Fault:
    endpoint: str
    kind: str
    remaining: int
    params: dict


@dataclass
class _Contract:
    raw: dict
    symbol: str
    asset: str
    tick: Decimal
    step: Decimal
    price_precision: int
    quantity_precision: int
    min_quantity: Decimal
    min_notional: Decimal
    maker: Decimal
    taker: Decimal
    api_open: bool
    api_close: bool
    max_long: int
    max_short: int


@dataclass
class SimOrder:
    order_id: int
    symbol: str
    side: str
    position_side: str
    type: str
    quantity: Decimal
    price: Decimal | None
    time_in_force: str
    client_order_id: str
    reduce_only: bool
    leverage: int
    time: int
    status: str = "PENDING"
    executed: Decimal = Decimal(0)
    value: Decimal = Decimal(0)          # sum of fill size x fill price
    commission: Decimal = Decimal(0)     # negative when paid, as BingX reports it
    profit: Decimal = Decimal(0)
    update_time: int = 0
    fills: list = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.executed

    @property
    def open(self) -> bool:
        return self.status in ("PENDING", "NEW", "PARTIALLY_FILLED")


@dataclass
class _Position:
    amount: Decimal = Decimal(0)   # one-way: signed (short < 0); hedge: size of that side
    avg: Decimal = Decimal(0)      # entry price shown: cost / size (may be rounded at 28 digits)
    # Exact traded value of what is open. The average price can repeat (299510 / 3000000);
    # PnL taken against it would not add up to the cash flows, so each close releases its
    # share of this instead, and the last close all that is left: a position's realised PnL
    # is then exactly what its exits fetched less what its entries cost.
    cost: Decimal = Decimal(0)
    realised: Decimal = Decimal(0)
    update_time: int = 0
    # Assigned when the position opens (from nothing, or flipping side in one-way mode) and
    # kept while it stays open, so clients can follow one position across listings.
    position_id: int = 0


def _load_default_contracts() -> list[dict]:
    text = importlib.resources.files("dita_bingx").joinpath("contracts.json").read_text()
    return json.loads(text)["data"]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return wire.plain(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address):   # a client that went away mid-answer
        log.debug("simulator: connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BingXSimulator/1"
    timeout = 60
    # Headers and body go out in two writes; with Nagle on, a keep-alive client waits
    # for the delayed ACK (~40 ms) on every request.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        try:
            self.server.sim._serve(self)
        except Exception:   # a simulator bug must show as one, not as a lost answer
            log.exception("simulator: %s %s failed", self.command, self.path.split("?")[0])
            self.server.sim._send(self, 500, {"code": 100500, "msg": "simulator internal error"})

    do_GET = do_POST = do_DELETE = do_PUT = _serve

    def log_message(self, format, *args):   # noqa: A002 - the stdlib's name
        log.debug("simulator %s: " + format, self.address_string(), *args)


class BingXSimulator:
    """A BingX perpetual exchange on ``http://127.0.0.1:<port>`` (see the module doc).

    :param api_key: the key clients must send in ``X-BX-APIKEY``.
    :param api_secret: the secret they sign with.
    :param port: 0 picks a free port; ``base_url`` says which.
    :param contracts: the contracts to list (the ``data`` of a contracts answer); default:
        six real-looking ones (BTC, ETH, TRX, XRP, DOGE, ADA).
    :param prices: initial mark price per symbol.
    :param balance: starting USDT wallet balance.
    :param liquidity: symbol -> the most that trades on one price move (and at once when
        an order arrives marketable); MARKET orders always fill entirely. Default: unlimited.
    :param position_mode: ``"one-way"`` (BingX's default) or ``"hedge"``.
    :param leverage: the leverage of every symbol until it is set.
    :param strict: refuse over-precise prices and quantities instead of truncating them
        (BingX truncates them).
    :param rate_limits: enforce the documented per-UID request rates with HTTP 429.
    :param place_answer: ``"documented"`` (default): a place answer holds only the fields
        BINGX.md §2.2 documents (no status, executedQty or avgPrice), so a client must ask
        to learn whether the order filled; ``"full"``: those three are added, as newer
        answers may do.
    :param listen_key_ttl: seconds a user-stream listenKey stays valid after it is created
        or extended (BingX: 60 minutes); tests shorten it to see keys expire.
    :param ping_interval: seconds between the stream's ``Ping`` frames (BingX: about 5).
    """

    def __init__(self, api_key: str = "sim-api-key", api_secret: str = "sim-api-secret", *, host: str = "127.0.0.1",
                 port: int = 0, contracts: list[dict] | None = None, prices: Mapping[str, Any] | None = None,
                 balance: Any = "100000", liquidity: Mapping[str, Any] | None = None, position_mode: str = "one-way",
                 leverage: int = 5, strict: bool = False, rate_limits: bool = True, place_answer: str = "documented",
                 listen_key_ttl: float = 3600.0, ping_interval: float = 5.0):
        if not api_key or not api_secret:
            raise ValueError("BingXSimulator needs a non-empty api_key and api_secret")
        if not listen_key_ttl > 0 or not ping_interval > 0:
            raise ValueError(f"listen_key_ttl and ping_interval must be positive, got {listen_key_ttl}, {ping_interval}")
        self.listen_key_ttl, self.ping_interval = float(listen_key_ttl), float(ping_interval)
        if position_mode not in ("one-way", "hedge"):
            raise ValueError(f"position_mode must be 'one-way' or 'hedge', got {position_mode!r}")
        self.api_key = api_key
        self._secret = api_secret.encode()
        self.host, self._port = host, port
        self.strict = strict
        self.rate_limits = rate_limits
        self.hedge = position_mode == "hedge"
        if place_answer not in PLACE_ANSWERS:
            raise ValueError(f"place_answer must be one of {', '.join(PLACE_ANSWERS)}, got {place_answer!r}")
        self.place_answer = place_answer
        self._lock = threading.RLock()
        self._contracts_raw = list(contracts if contracts is not None else _load_default_contracts())
        self._contracts = self._tradeable(self._contracts_raw)
        self._prices = {s: Decimal(str(p)) for s, p in DEFAULT_PRICES.items() if s in self._contracts}
        for symbol, price in (prices or {}).items():
            self._check_symbol(symbol)
            self._prices[symbol] = Decimal(str(price))
        self._liquidity = {}
        for symbol, qty in (liquidity or {}).items():
            self._check_symbol(symbol)
            self._liquidity[symbol] = Decimal(str(qty))
        self._default_leverage = int(leverage)
        self._leverage: dict[tuple[str, str], int] = {}
        self.wallet = Decimal(str(balance))
        self.realised = Decimal(0)
        self.fees_paid = Decimal(0)
        self._positions: dict[tuple[str, str], _Position] = collections.defaultdict(_Position)
        self._margin_type: dict[str, str] = {}    # symbol -> ISOLATED; CROSSED when absent
        self._orders: dict[int, SimOrder] = {}
        self._by_coid: dict[str, SimOrder] = {}
        # Order and position ids come from one counter, beyond 2**53, as BingX's do.
        self._ids = itertools.count(1_900_000_000_000_000_001)
        self._trade_ids = itertools.count(1)
        # The market's past, for the ticker and klines: every mark price with the time it was
        # set, and every fill (this account's trades are the only trades there are).
        started = self._now()
        self._history: dict[str, collections.deque] = {
            s: collections.deque([(started, p)], maxlen=HISTORY_LIMIT) for s, p in self._prices.items()}
        self._trades: collections.deque[dict] = collections.deque(maxlen=HISTORY_LIMIT)
        self._faults: list[_Fault] = []
        self._hits: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        # Client order id -> when a place with it last arrived (time.monotonic()), for the
        # one-submission-per-second rule.
        self._submitted: dict[str, float] = {}
        # Every request that reached an endpoint, in order (the latest 100000 in a long run).
        self.requests: collections.deque[dict] = collections.deque(maxlen=100_000)
        self.throttled = 0               # requests refused by the rate limits (not injected ones)
        # The user data stream: listenKey -> when it expires (ms, the clock of _now), and
        # the open WebSocket connections.
        self._listen_keys: dict[str, int] = {}
        self._streams: list[_Stream] = []
        self._dropping: dict[str, int] = {}   # test hook: event type -> frames to lose
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"BingXSimulator({self.base_url if self._server else 'not started'})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "BingXSimulator":
        if self._server is None:
            self._server = _Server((self.host, self._port), _Handler)
            self._server.sim = self
            # shutdown() waits for the next poll: keep it short, tests start and stop many.
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                            name=f"bingx-sim:{self.port}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stops serving. Every user-stream connection is sent a Close (1001, going away) and
        ended within about STREAM_CLOSE_WAIT seconds, whether or not its client answers."""
        if self._server is not None:
            with self._lock:
                streams = list(self._streams)
                for stream in streams:
                    stream.push(_Close(1001, "simulator closing"))
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            deadline = time.monotonic() + STREAM_CLOSE_WAIT + 1.0
            for stream in streams:
                stream.done.wait(max(0.0, deadline - time.monotonic()))
            self._server = None

    def __enter__(self) -> "BingXSimulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: every path starts with ``/openApi``."""
        if self._server is None:
            raise RuntimeError("the simulator is not started: use start() or a with-block")
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ test controls

    def set_price(self, symbol: str, price: Any) -> list[dict]:
        """Moves the mark price; resting LIMIT orders the move crosses fill, each at its own
        price, up to the symbol's liquidity. Returns the fills."""
        self._check_symbol(symbol)
        price = Decimal(str(price))
        if price <= 0:
            raise ValueError(f"price must be positive, got {price}")
        with self._lock:
            self._prices[symbol] = price
            self._history.setdefault(symbol, collections.deque(maxlen=HISTORY_LIMIT)).append((self._now(), price))
            return self._match(symbol)

    def price(self, symbol: str) -> Decimal:
        self._check_symbol(symbol)
        with self._lock:
            return self._mark(symbol)

    def set_liquidity(self, symbol: str, quantity: Any | None) -> None:
        """The most that trades on one price move (None: unlimited)."""
        self._check_symbol(symbol)
        with self._lock:
            if quantity is None:
                self._liquidity.pop(symbol, None)
            else:
                self._liquidity[symbol] = Decimal(str(quantity))

    def fill(self, client_order_id: str, quantity: Any, price: Any | None = None) -> dict:
        """Fills exactly ``quantity`` of a working order, at ``price`` (default: its limit
        price, or the market for a MARKET order). Returns the order as BingX shows it."""
        with self._lock:
            order = self._by_coid.get(client_order_id.lower())
            if order is None or not order.open:
                raise ValueError(f"no working order with client order id {client_order_id!r}")
            quantity = Decimal(str(quantity))
            if not Decimal(0) < quantity <= order.remaining:
                raise ValueError(f"fill of {quantity} for {client_order_id}: {order.remaining} remains")
            at = Decimal(str(price)) if price is not None else (order.price or self._mark(order.symbol))
            self._execute(order, quantity, at, maker=order.type == "LIMIT")
            return self._order_json(order)

    def inject(self, endpoint: str, fault: str, count: int = 1, **params) -> None:
        """Makes the next ``count`` requests to ``endpoint`` fail as ``fault`` says.

        Endpoints: place_order, cancel_order, query_order, open_orders, open_order, leverage,
        balance, positions, contracts, premium_index, server_time, ticker, depth, klines,
        batch_orders, batch_cancel, all_orders, fill_orders, close_all_positions,
        margin_type, query_margin_type, ... (every name in the routes), or ``*`` for any.
        Faults:
          ``error`` (``code``, ``msg``): an exchange refusal, nothing done;
          ``429``: HTTP 429, nothing done; ``5xx`` / ``http_error`` (``status``=503): nothing done;
          ``http_error_after_accept``: done, then a 5xx answer;
          ``drop_before_accept`` / ``drop_after_accept``: the connection closes with no answer,
          before / after the request was carried out;
          ``delay`` (``seconds``, ``after_accept``=False): wait, then carry out and answer
          (``after_accept``: carry out, then wait, then answer);
          ``malformed`` / ``malformed_after_accept``: a truncated JSON body;
          ``wrong_types``: done, then an answer whose fields have the wrong JSON types;
          ``fill_before_cancel`` (cancel_order): the order's remainder fills just before
          the cancel reaches it;
          ``busy_after_accept`` (``code``=109500): done, then answered "system busy" with
          that code, as if nothing had been done.
        """
        names = {name for name, _, _ in self._routes().values()} | {"*"}
        if endpoint not in names:
            raise ValueError(f"unknown endpoint {endpoint!r}; known: {', '.join(sorted(names))}")
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(sorted(FAULTS))}")
        if fault == "error" and ("code" not in params or "msg" not in params):
            raise ValueError("fault 'error' needs code= and msg=")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        with self._lock:
            self._faults.append(_Fault(endpoint, fault, count, dict(params)))

    def pending_faults(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return [(f.endpoint, f.kind, f.remaining) for f in self._faults if f.remaining > 0]

    def set_contracts(self, contracts: list[dict]) -> None:
        """Lists other contracts from now on (as a listing change on the exchange would)."""
        with self._lock:
            self._contracts_raw, self._contracts = list(contracts), self._tradeable(contracts)

    def orders(self) -> list[dict]:
        """Every order ever accepted, as BingX shows it."""
        with self._lock:
            return [self._order_json(o) for o in self._orders.values()]

    def order(self, client_order_id: str) -> dict | None:
        with self._lock:
            o = self._by_coid.get(client_order_id.lower())
            return self._order_json(o) if o else None

    def position(self, symbol: str, side: str = "BOTH") -> Decimal:
        """The position size: signed in one-way mode (``side`` BOTH), else of that side."""
        with self._lock:
            return self._positions[(symbol, side)].amount

    def streams(self) -> list[dict]:
        """The open user-data WebSocket connections of valid keys: ``listenKey`` and how many
        "Pong" answers each has received."""
        with self._lock:
            return [{"listenKey": stream.listen_key, "pongs": stream.pongs} for stream in self._streams
                    if stream.listen_key in self._listen_keys]

    def drop_stream_frames(self, count: int = 1, event: str = "ORDER_TRADE_UPDATE") -> None:
        """Test hook: the next ``count`` stream events of type ``event`` reach no connection,
        as a frame lost without trace would (the connection stays open)."""
        with self._lock:
            self._dropping[event] = self._dropping.get(event, 0) + count

    def close_streams(self) -> None:
        """Test hook: every stream connection is closed (1012, service restart); the keys stay
        valid, so a client may connect again with the same one."""
        with self._lock:
            for stream in self._streams:
                stream.push(_Close(1012, "simulator: connection dropped"))

    def account(self) -> dict[str, Decimal]:
        """Wallet balance, realised PnL and fees paid so far, as exact decimals."""
        with self._lock:
            return {"balance": self.wallet, "realised": self.realised, "fees_paid": self.fees_paid,
                    "available": self._available()}

    # ------------------------------------------------------------------ HTTP plumbing

    def _routes(self) -> dict[tuple[str, str], tuple[str, Callable, bool | str]]:
        """(method, path) -> (endpoint name, handler, signed: True, False or KEY_ONLY)."""
        return {
            ("GET", wire.SERVER_TIME): ("server_time", self._ep_server_time, False),
            ("GET", wire.CONTRACTS): ("contracts", self._ep_contracts, False),
            ("GET", wire.PREMIUM_INDEX): ("premium_index", self._ep_premium_index, False),
            ("GET", "/openApi/swap/v2/quote/price"): ("price", self._ep_price, False),
            ("GET", "/openApi/swap/v2/quote/ticker"): ("ticker", self._ep_ticker, False),
            ("GET", "/openApi/swap/v2/quote/depth"): ("depth", self._ep_depth, False),
            ("GET", "/openApi/swap/v3/quote/klines"): ("klines", self._ep_klines, False),
            ("POST", wire.ORDER): ("place_order", self._ep_place, True),
            ("POST", wire.ORDER + "/test"): ("test_order", self._ep_test_order, True),
            ("DELETE", wire.ORDER): ("cancel_order", self._ep_cancel, True),
            ("GET", wire.ORDER): ("query_order", self._ep_query, True),
            ("GET", wire.OPEN_ORDERS): ("open_orders", self._ep_open_orders, True),
            ("GET", "/openApi/swap/v2/trade/openOrder"): ("open_order", self._ep_open_order, True),
            ("DELETE", "/openApi/swap/v2/trade/allOpenOrders"): ("cancel_all", self._ep_cancel_all, True),
            ("POST", "/openApi/swap/v2/trade/batchOrders"): ("batch_orders", self._ep_batch_place, True),
            ("DELETE", "/openApi/swap/v2/trade/batchOrders"): ("batch_cancel", self._ep_batch_cancel, True),
            ("GET", "/openApi/swap/v2/trade/allOrders"): ("all_orders", self._ep_all_orders, True),
            ("GET", "/openApi/swap/v2/trade/allFillOrders"): ("fill_orders", self._ep_fill_orders, True),
            ("POST", "/openApi/swap/v2/trade/closeAllPositions"): ("close_all_positions", self._ep_close_all, True),
            ("GET", "/openApi/swap/v2/trade/marginType"): ("query_margin_type", self._ep_get_margin_type, True),
            ("POST", "/openApi/swap/v2/trade/marginType"): ("margin_type", self._ep_set_margin_type, True),
            ("GET", wire.LEVERAGE): ("leverage", self._ep_get_leverage, True),
            ("POST", wire.LEVERAGE): ("leverage", self._ep_set_leverage, True),
            ("GET", wire.BALANCE): ("balance", self._ep_balance_v3, True),
            ("GET", "/openApi/swap/v2/user/balance"): ("balance", self._ep_balance_v2, True),
            ("GET", wire.POSITIONS): ("positions", self._ep_positions, True),
            ("GET", "/openApi/swap/v1/positionSide/dual"): ("position_mode", self._ep_get_mode, True),
            ("POST", "/openApi/swap/v1/positionSide/dual"): ("position_mode", self._ep_set_mode, True),
            # What CCXT's load_markets asks for outside sandbox mode; nothing to list there.
            ("GET", "/openApi/wallets/v1/capital/config/getall"): ("currencies", lambda p: [], True),
            ("GET", "/openApi/cswap/v1/market/contracts"): ("coin_contracts", lambda p: [], False),
            ("GET", "/openApi/spot/v1/common/symbols"): ("spot_symbols", lambda p: {"symbols": []}, False),
            # BINGX.md §2.9: the docs show only the X-BX-APIKEY header, CCXT signs; both are accepted.
            ("POST", LISTEN_KEY_PATH): ("listen_key", self._ep_listen_key_create, KEY_ONLY),
            ("PUT", LISTEN_KEY_PATH): ("listen_key", self._ep_listen_key_extend, KEY_ONLY),
            ("DELETE", LISTEN_KEY_PATH): ("listen_key", self._ep_listen_key_delete, KEY_ONLY),
        }

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        # The rate limits count arrivals: taken first, so the time spent reading and checking
        # a request does not make its neighbours look closer together than they were sent.
        arrived = time.monotonic()
        split = urlsplit(h.path)
        path, raw_query = split.path, split.query
        if path == STREAM_PATH and h.command == "GET":
            self._serve_stream(h, raw_query)
            return
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length > 0 else b""
        route = self._routes().get((h.command, path))
        if route is None:
            self._send(h, 404, {"code": 100400, "msg": f"this api is not exist: {h.command} {path}"})
            return
        endpoint, handler, signed = route
        fault = self._take_fault(endpoint)
        kind = fault.kind if fault else None
        # Every request that reached an endpoint is logged: "authenticated" says whether the
        # exchange accepted it as genuine, "fault" what was injected, "answer" the code sent.
        entry = {"endpoint": endpoint, "method": h.command, "path": path, "query": raw_query, "params": {},
                 "authenticated": False, "fault": kind, "answer": None}
        self._record(entry)
        try:
            params, parts = self._params(raw_query, body, h.headers.get("Content-Type") or "")
        except _Answer as answer:
            entry["answer"] = answer.code
            self._send(h, answer.http_status, {"code": answer.code, "msg": answer.msg, "data": {}})
            return
        entry["params"] = params
        if kind == "drop_before_accept":
            h.close_connection = True
            return
        # The one-submission-per-second rule counts the places that reach the order service:
        # one held there (a delay fault) holds its client order id from its arrival, so a
        # second one within the second is refused while the first may yet be carried out.
        same_order = None
        if kind == "delay" and not fault.params.get("after_accept") and endpoint == "place_order":
            same_order = self._resubmitted(params, arrived)
        if kind == "delay" and not fault.params.get("after_accept"):
            time.sleep(float(fault.params.get("seconds", 1.0)))
        if kind in ("5xx", "http_error"):
            entry["answer"] = int(fault.params.get("status", 503))
            self._send_text(h, entry["answer"], "<html><body>503 Service Temporarily Unavailable</body></html>")
            return
        if kind == "429":
            entry["answer"] = 429
            self._send(h, 429, {"code": 100410, "msg": "rate limit exceeded"})
            return
        if kind == "malformed":
            self._send_text(h, 200, '{"code":0,"msg":"","data":{"order":{"symbol":"BTC-', "application/json")
            return
        if signed:
            refusal = self._authenticate(h, params, parts, key_only=signed == KEY_ONLY)
            if refusal is not None:
                entry["answer"] = refusal.code
                self._send(h, 200, {"code": refusal.code, "msg": refusal.msg, "data": {}})
                return
        entry["authenticated"] = True
        if self.rate_limits and self._throttle(endpoint if signed else "public",
                                                RATE_LIMITS.get(endpoint, DEFAULT_RATE) if signed else PUBLIC_RATE,
                                                arrived):
            with self._lock:
                self.throttled += 1
            entry["answer"] = 429
            self._send(h, 429, {"code": 100410, "msg": "rate limit exceeded"})
            return
        if kind == "error":
            entry["answer"] = int(fault.params["code"])
            self._send(h, 200, {"code": entry["answer"], "msg": str(fault.params["msg"]), "data": {}})
            return
        if same_order is None and endpoint == "place_order":
            same_order = self._resubmitted(params, arrived)
        if same_order:
            entry["answer"] = 109201
            self._send(h, 200, {"code": 109201, "msg": MSG_SAME_ORDER, "data": {}})
            return
        try:
            with self._lock:
                if kind == "fill_before_cancel":
                    self._fill_before_cancel(params)
                data = handler(params)
            if isinstance(data, _Bare):
                entry["answer"] = data.status
                if data.payload is None:
                    self._send_text(h, data.status, "", "application/json")
                else:
                    self._send(h, data.status, data.payload)
                return
            answer = {"code": 0, "msg": ""} if data is NO_DATA else {"code": 0, "msg": "", "data": data}
            if endpoint in ("place_order", "cancel_order", "query_order", "open_orders"):
                answer["timestamp"] = self._now()
        except _Answer as refused:
            answer = {"code": refused.code, "msg": refused.msg, "data": {}}
        entry["answer"] = answer["code"]
        if kind == "drop_after_accept":
            h.close_connection = True
            return
        if kind == "busy_after_accept":
            entry["answer"] = int(fault.params.get("code", 109500))
            self._send(h, 200, {"code": entry["answer"], "msg": str(fault.params.get("msg", MSG_BUSY)), "data": {}})
            return
        if kind == "delay" and fault.params.get("after_accept"):
            time.sleep(float(fault.params.get("seconds", 1.0)))
        if kind == "http_error_after_accept":
            self._send_text(h, int(fault.params.get("status", 502)), "<html><body>502 Bad Gateway</body></html>")
            return
        if kind == "malformed_after_accept":
            self._send_text(h, 200, json.dumps(answer, default=_json_default)[:40], "application/json")
            return
        if kind == "wrong_types":
            answer = _scramble(answer)
        self._send(h, 200, answer)

    def _send(self, h: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        self._send_text(h, status, json.dumps(payload, default=_json_default), "application/json")

    @staticmethod
    def _send_text(h: BaseHTTPRequestHandler, status: int, text: str, content_type: str = "text/html") -> None:
        data = text.encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:   # the client gave up waiting (a delay fault longer than its timeout)
            h.close_connection = True

    def _record(self, entry: dict) -> None:
        entry["time"] = self._now()
        with self._lock:
            self.requests.append(entry)

    def _resubmitted(self, params: dict, arrived: float) -> bool:
        """Whether a place with this client order id arrived less than a second ago (BINGX.md
        §3: 109201). Every authenticated place counts, refused or not [guess]; ids compare
        lower-cased."""
        coid = (params.get("clientOrderID") or params.get("clientOrderId") or "").lower()
        if not coid:
            return False
        with self._lock:
            last = self._submitted.get(coid)
            self._submitted[coid] = arrived
        return last is not None and arrived - last < DUPLICATE_WINDOW

    def _take_fault(self, endpoint: str) -> _Fault | None:
        with self._lock:
            for f in self._faults:
                if f.remaining > 0 and f.endpoint in (endpoint, "*"):
                    f.remaining -= 1
                    return f
        return None

    def _throttle(self, bucket: str, limit: tuple[int, float], now: float | None = None) -> bool:
        """Whether a request arriving at ``now`` (``time.monotonic()``) exceeds ``limit``: a
        sliding window that holds at most ``count`` accepted requests. A request that arrives
        up to RATE_JITTER before the oldest one leaves the window is let in (see RATE_JITTER)."""
        count, window = limit
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits[bucket]
            while hits and now - hits[0] >= window - RATE_JITTER:
                hits.popleft()
            if len(hits) >= count:
                return True
            hits.append(now)
            return False

    @staticmethod
    def _params(raw_query: str, body: bytes, content_type: str) -> tuple[dict[str, str], dict]:
        """Parameters from the query string and a form or JSON body (the query wins), and
        the raw parts the signature may have been computed over."""
        query_pairs = parse_qsl(raw_query, keep_blank_values=True)
        body_text = body.decode("utf-8", "replace")
        body_pairs: list[tuple[str, str]] = []
        body_kind = None
        if body_text.strip():
            if "json" in content_type or body_text.lstrip().startswith("{"):
                try:
                    obj = json.loads(body_text, parse_float=str, parse_int=str)
                except ValueError:
                    raise _invalid("the request body is not valid JSON") from None
                if not isinstance(obj, dict):
                    raise _invalid("the JSON body must be an object")
                body_kind = "json"
                body_pairs = [(k, _param_text(v)) for k, v in obj.items()]
            else:
                body_kind = "form"
                body_pairs = parse_qsl(body_text, keep_blank_values=True)
        params = dict(body_pairs)
        params.update(query_pairs)
        parts = {"query": raw_query, "body": body_text if body_kind == "form" else "",
                 "pairs": [(k, v) for k, v in query_pairs + body_pairs if k != "signature"],
                 "signature": params.pop("signature", None)}
        return params, parts

    def _authenticate(self, h: BaseHTTPRequestHandler, params: dict, parts: dict,
                      key_only: bool = False) -> _Answer | None:
        """None if the request is genuine, else the refusal. ``key_only``: the API key
        alone suffices, but a signature, if sent, must be valid (the listenKey endpoints)."""
        key = h.headers.get("X-BX-APIKEY")
        if not key:
            return _Answer(100413, "Null apiKey")
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return _Answer(100413, "Incorrect apiKey")
        signature = parts["signature"]
        if key_only and not signature:
            return None
        if not signature:
            return _Answer(100412, "Null signature")
        if not any(hmac.compare_digest(wire.sign(self._secret, text), signature.lower())
                   for text in self._signed_texts(parts)):
            return _Answer(100001, "Signature verification failed due to signature mismatch")
        ts = params.get("timestamp", "")
        window = params.get("recvWindow") or "5000"
        if not window.isdigit() or int(window) > 60000:
            return _invalid(f"recvWindow must be a whole number of ms up to 60000, got {window!r}")
        now = self._now()
        if not ts.isdigit() or now - int(ts) > int(window) or int(ts) - now > 1000:
            return _Answer(100421, "Null timestamp or timestamp mismatch")
        return None

    @staticmethod
    def _signed_texts(parts: dict) -> set[str]:
        """Every string a real client may have signed (BINGX.md §1, "Simulator advice")."""
        def without_signature(raw: str) -> str:
            return "&".join(p for p in raw.split("&") if p and not p.startswith("signature="))

        query, body = without_signature(parts["query"]), without_signature(parts["body"])
        texts = {query, unquote(query), unquote_plus(query)}
        if body:
            texts |= {body, unquote(body), query + body, query + "&" + body, unquote(query + "&" + body)}
        pairs = parts["pairs"]
        texts.add(wire.canonical(pairs))
        texts.add(wire.canonical(sorted(pairs)))
        return texts

    # ------------------------------------------------------------------ state helpers

    @staticmethod
    def _now() -> int:
        return int(time.time() * 1000)

    def _tradeable(self, raw_contracts: list[dict]) -> dict[str, _Contract]:
        """The contracts the simulator can trade. One it cannot read is still listed exactly
        as given (clients' parsing is tested that way), but orders for it are refused."""
        out = {}
        for raw in raw_contracts:
            try:
                out[raw["symbol"]] = self._contract(raw)
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                log.warning("simulator: contract %r is listed but not tradeable: %r", raw.get("symbol"), exc)
        return out

    def _contract(self, raw: dict) -> _Contract:
        pp, qp = int(raw["pricePrecision"]), int(raw["quantityPrecision"])
        dec = lambda name, default="0": Decimal(str(raw.get(name, default)))  # noqa: E731
        return _Contract(
            raw=raw, symbol=raw["symbol"], asset=raw.get("asset") or raw["symbol"].split("-")[0],
            tick=wire.step_of(pp), step=wire.step_of(qp), price_precision=pp, quantity_precision=qp,
            min_quantity=dec("tradeMinQuantity"), min_notional=dec("tradeMinUSDT"),
            maker=dec("makerFeeRate", "0.0002"), taker=dec("takerFeeRate", "0.0005"),
            api_open=str(raw.get("apiStateOpen", "true")).lower() == "true",
            api_close=str(raw.get("apiStateClose", "true")).lower() == "true",
            max_long=int(raw.get("maxLongLeverage", 125)), max_short=int(raw.get("maxShortLeverage", 125)))

    def _check_symbol(self, symbol: str) -> None:
        if symbol not in self._contracts:
            raise ValueError(f"the simulator does not list {symbol!r}; it lists {', '.join(self._contracts)}")

    def _mark(self, symbol: str) -> Decimal:
        if symbol not in self._prices:
            raise _Answer(109425, f"{symbol} has no market price in the simulator; set one with set_price")
        return self._prices[symbol]

    def _symbol(self, params: dict) -> _Contract:
        symbol = params.get("symbol")
        if not symbol:
            raise _invalid("parameter symbol is must")
        contract = self._contracts.get(symbol)
        if contract is None:
            raise _Answer(109425, f"{symbol} not exist")
        return contract

    def _lev(self, symbol: str, side: str) -> int:
        key = "BOTH" if not self.hedge else side
        return self._leverage.get((symbol, key), self._default_leverage)

    def _unrealized(self, cross_only: bool = False) -> Decimal:
        total = Decimal(0)
        for (symbol, side), pos in self._positions.items():
            if pos.amount and not (cross_only and self._isolated(symbol)):
                sign = -1 if side == "SHORT" else 1
                total += (self._prices.get(symbol, pos.avg) - pos.avg) * pos.amount * sign
        return total

    def _isolated(self, symbol: str) -> bool:
        return self._margin_type.get(symbol) == "ISOLATED"

    def _used_margin(self) -> Decimal:
        return sum((abs(p.amount) * p.avg / self._lev(s, side) for (s, side), p in self._positions.items() if p.amount),
                   Decimal(0))

    def _frozen_margin(self) -> Decimal:
        total = Decimal(0)
        for o in self._orders.values():
            if o.open and self._opens(o):
                px = o.price if o.price is not None else self._prices.get(o.symbol, Decimal(0))
                total += o.remaining * px / o.leverage
        return total

    def _available(self) -> Decimal:
        # An isolated position's profit or loss stays in its own margin: only the cross
        # positions' unrealised PnL counts towards what other orders can use.
        return self.wallet + self._unrealized(cross_only=True) - self._used_margin() - self._frozen_margin()

    def _opens(self, o: SimOrder) -> bool:
        """Whether an order adds to a position (rather than closing one)."""
        if self.hedge:
            return (o.side, o.position_side) in (("BUY", "LONG"), ("SELL", "SHORT"))
        return not o.reduce_only

    def _closable(self, o: SimOrder) -> Decimal:
        """How much of a closing order the position can still absorb."""
        if self.hedge:
            return self._positions[(o.symbol, o.position_side)].amount
        amount = self._positions[(o.symbol, "BOTH")].amount
        if (o.side == "SELL" and amount > 0) or (o.side == "BUY" and amount < 0):
            return abs(amount)
        return Decimal(0)

    # ------------------------------------------------------------------ trading

    def _place(self, p: dict, dry_run: bool = False) -> dict:
        for name in ("symbol", "type", "side"):
            if not p.get(name):
                raise _invalid(f"parameter {name} is must")
        c = self._symbol(p)
        order_type = p["type"]
        if order_type not in ORDER_TYPES:
            raise _invalid(f"type {order_type!r} is not one of {', '.join(sorted(ORDER_TYPES))}")
        if order_type not in ("LIMIT", "MARKET"):
            raise _Answer(109400, f"order type {order_type} is not supported by this simulator (LIMIT, MARKET)")
        side = p["side"]
        if side not in ("BUY", "SELL"):
            raise _invalid(f"side must be BUY or SELL, got {side!r}")
        position_side = p.get("positionSide", "")
        if self.hedge:
            position_side = position_side or "LONG"
            if position_side not in ("LONG", "SHORT"):
                raise _Answer(109400, "In the Hedge mode, the 'PositionSide' field can only be set to LONG or SHORT.")
            if "reduceOnly" in p:
                raise _Answer(109400, "In the Hedge mode, the 'ReduceOnly' field can not be filled.")
        elif position_side != "BOTH":
            raise _Answer(109400, "In the One-way mode, the 'PositionSide' field can only be set to BOTH.")
        reduce_only = p.get("reduceOnly", "false")
        if reduce_only not in ("true", "false"):
            raise _invalid(f"reduceOnly must be true or false, got {reduce_only!r}")
        if "quantity" not in p or p["quantity"] == "":
            raise _invalid("parameter quantity is must")
        quantity = self._number(p["quantity"], "quantity", c.step, c.quantity_precision, c)
        price = None
        if order_type == "LIMIT":
            if "price" not in p or p["price"] == "":
                raise _invalid("parameter price is must")
            price = self._number(p["price"], "price", c.tick, c.price_precision, c)
        tif = p.get("timeInForce") or "GTC"
        if tif not in TIME_IN_FORCE:
            raise _invalid(f"timeInForce must be one of {', '.join(sorted(TIME_IN_FORCE))}, got {tif!r}")
        coid = p.get("clientOrderID") or p.get("clientOrderId") or ""
        if coid:
            if len(coid) > 40:
                raise _invalid(f"clientOrderId must be 1-40 characters, got {len(coid)}")
            coid = coid.lower()   # BingX lowercases client order ids
            if coid in self._by_coid:
                raise _Answer(101481, "clientOrderID cannot be repeated")
        order = SimOrder(order_id=0, symbol=c.symbol, side=side, position_side=position_side, type=order_type,
                         quantity=quantity, price=price, time_in_force=tif, client_order_id=coid,
                         reduce_only=reduce_only == "true", leverage=self._lev(c.symbol, position_side),
                         time=self._now())
        opens = self._opens(order)
        if quantity < c.min_quantity or quantity <= 0:
            raise _Answer(101400, f"The minimum order amount is {wire.normal(c.min_quantity)} {c.asset}.")
        mark = self._mark(c.symbol)
        reference = price if price is not None else mark
        if opens and quantity * reference < c.min_notional:
            raise _Answer(101400, "Please ensure that the minimum nominal value of the order placed must be greater "
                                  f"than {wire.normal(c.min_notional)}u")
        if (opens and not c.api_open) or (not opens and not c.api_close):
            raise _Answer(101415, f"{c.symbol} is currently restricted from API {'opening' if opens else 'closing'}")
        if not opens:
            pending = sum((o.remaining for o in self._orders.values()
                           if o.open and o.symbol == c.symbol and not self._opens(o) and o.side == side
                           and o.position_side == position_side), Decimal(0))
            closable = self._closable(order)
            if self.hedge and closable == 0:
                raise _Answer(101205, "No position to close")
            if quantity + pending > closable:
                if self.hedge:
                    raise _Answer(101205, f"No position to close: {closable - pending} can be closed")
                raise _Answer(101290, MSG_REDUCE_ONLY)
        crosses = self._crosses(order, mark)
        if order_type == "LIMIT" and tif == "PostOnly" and crosses:
            raise _Answer(101215, MSG_POST_ONLY)
        if opens and quantity * reference / order.leverage > self._available():
            raise _Answer(101204, "Insufficient margin")
        order.order_id = next(self._ids)
        order.update_time = order.time
        if dry_run:
            return self._place_answer(order)
        self._orders[order.order_id] = order
        if coid:
            self._by_coid[coid] = order
        self._publish(lambda: self._order_event(order, "NEW"))
        if order_type == "MARKET":
            self._execute(order, quantity, mark, maker=False)
        elif crosses:
            budget = self._liquidity.get(c.symbol)
            fill = quantity if budget is None else min(quantity, budget)
            if tif == "FOK" and fill < quantity:
                fill = Decimal(0)
            if fill > 0:
                self._execute(order, fill, mark, maker=False)
        if order.open and tif in ("IOC", "FOK"):
            self._cancelled(order)
        return self._place_answer(order)

    def _place_answer(self, o: SimOrder) -> dict:
        c = self._contracts[o.symbol]
        answer = {
            "symbol": o.symbol, "orderId": o.order_id, "side": o.side, "positionSide": o.position_side,
            "type": o.type, "clientOrderID": o.client_order_id, "workingType": "MARK_PRICE",
            "price": float(o.price) if o.price is not None else 0, "quantity": float(o.quantity), "stopPrice": 0,
            "timeInForce": o.time_in_force if o.type == "LIMIT" else "", "priceRate": 0, "stopLoss": "",
            "takeProfit": "", "reduceOnly": o.reduce_only,
        }
        if self.place_answer == "full":   # the fields newer answers may add (BINGX.md §2.2)
            answer.update(status=o.status, avgPrice=self._avg_text(o, c), executedQty=self._qty_text(o.executed, c))
        return {"order": answer}

    def _number(self, raw: str, name: str, step: Decimal, places: int, c: _Contract) -> Decimal:
        try:
            value = wire.to_decimal(raw, name)   # CCXT may send 5e-05
        except ValueError:
            raise _invalid(f"{name} must be a number, got {raw!r}") from None
        if value <= 0:
            raise _invalid(f"{name} must be positive, got {raw!r}")
        truncated = (value / step).to_integral_value(rounding=ROUND_FLOOR) * step
        if truncated != value and self.strict:
            raise _Answer(109400, f"{name} {raw} has more decimals than the {name} precision {places} of {c.symbol}")
        return truncated.quantize(step)   # BingX truncates over-precise values (documented)

    @staticmethod
    def _crosses(o: SimOrder, mark: Decimal) -> bool:
        if o.type == "MARKET":
            return True
        return mark <= o.price if o.side == "BUY" else mark >= o.price

    def _match(self, symbol: str) -> list[dict]:
        mark = self._prices[symbol]
        crossed = [o for o in self._orders.values()
                   if o.open and o.symbol == symbol and o.type == "LIMIT" and self._crosses(o, mark)]
        crossed.sort(key=lambda o: (-o.price if o.side == "BUY" else o.price, o.time, o.order_id))
        budget = self._liquidity.get(symbol)
        fills = []
        for o in crossed:
            qty = o.remaining if budget is None else min(o.remaining, budget)
            if qty <= 0:
                break
            done = self._execute(o, qty, o.price, maker=True)
            if done is not None:
                fills.append(done)
                if budget is not None:
                    budget -= done["quantity"]
        return fills

    def _execute(self, o: SimOrder, qty: Decimal, price: Decimal, maker: bool) -> dict | None:
        """One fill: the order, the position, the wallet; then its stream events (the
        order's TRADE, then the account's update)."""
        c = self._contracts[o.symbol]
        if not self._opens(o):
            qty = min(qty, self._closable(o))
            if qty <= 0:   # the position it was to reduce is gone
                self._cancelled(o)
                return None
        key = (o.symbol, o.position_side if self.hedge else "BOTH")
        was_long = self._positions[key].amount > 0 if not self.hedge else o.position_side == "LONG"
        # Charged as BingX prints it (FEE_PLACES), so every printed figure adds up.
        fee = _round(qty * price * (c.maker if maker else c.taker), FEE_PLACES)
        pnl = self._move_position(o, qty, price)
        o.executed += qty
        o.value += qty * price
        o.commission -= fee
        o.profit += pnl
        o.update_time = self._now()
        o.status = "FILLED" if o.executed == o.quantity else "PARTIALLY_FILLED"
        self.wallet += pnl - fee
        self.realised += pnl
        self.fees_paid += fee
        fill = {"order_id": o.order_id, "client_order_id": o.client_order_id, "quantity": qty, "price": price,
                "fee": fee, "maker": maker, "pnl": pnl, "symbol": o.symbol, "time": o.update_time,
                "trade_id": next(self._trade_ids)}
        o.fills.append(fill)
        self._trades.append(fill)
        self._publish(lambda: self._order_event(o, "TRADE", fill))
        self._publish(lambda: self._account_event(key, was_long, pnl - fee))
        if o.open and not self._opens(o) and self._closable(o) == 0:
            self._cancelled(o)   # a reduce-only remainder with nothing left to reduce
        return fill

    def _move_position(self, o: SimOrder, qty: Decimal, price: Decimal) -> Decimal:
        if self.hedge:
            pos = self._positions[(o.symbol, o.position_side)]
            pos.update_time = self._now()
            if self._opens(o):
                if pos.amount == 0:
                    self._new_position(pos)
                pos.cost += qty * price
                pos.amount += qty
                pos.avg = pos.cost / pos.amount
                return Decimal(0)
            sign = 1 if o.position_side == "LONG" else -1
            released = self._release(pos, qty, pos.amount)
            pnl = (qty * price - released) * sign
            pos.amount -= qty
            pos.realised += pnl
            if pos.amount == 0:
                pos.avg = Decimal(0)
            return pnl
        pos = self._positions[(o.symbol, "BOTH")]
        pos.update_time = self._now()
        delta = qty if o.side == "BUY" else -qty
        before = pos.amount
        if before == 0 or (before > 0) == (delta > 0):
            if before == 0:
                self._new_position(pos)
            pos.cost += qty * price
            pos.amount = before + delta
            pos.avg = pos.cost / abs(pos.amount)
            return Decimal(0)
        closed = min(qty, abs(before))
        released = self._release(pos, closed, abs(before))
        pnl = (closed * price - released) * (1 if before > 0 else -1)
        pos.amount = before + delta
        pos.realised += pnl
        if pos.amount == 0:
            pos.avg = Decimal(0)
        elif (pos.amount > 0) != (before > 0):
            pos.avg = price   # flipped: the rest opened at this fill's price, a new position
            pos.cost = abs(pos.amount) * price
            self._new_position(pos)
        return pnl

    @staticmethod
    def _release(pos: _Position, closed: Decimal, size: Decimal) -> Decimal:
        """The entry cost of ``closed`` out of ``size`` open: its share, or all that is left."""
        share = pos.cost if closed == size else pos.cost * closed / size
        pos.cost -= share
        return share

    def _new_position(self, pos: _Position) -> None:
        """A position opens: it gets its own id and its own realised PnL."""
        pos.position_id = next(self._ids)
        pos.realised = Decimal(0)

    def _find(self, p: dict, not_found: _Answer) -> SimOrder:
        c = self._symbol(p)
        order_id = p.get("orderId")
        coid = p.get("clientOrderID") or p.get("clientOrderId")
        if order_id:
            order = self._orders.get(int(order_id)) if order_id.isdigit() else None
        elif coid:
            order = self._by_coid.get(coid.lower())
        else:
            raise _invalid("orderId or clientOrderId is must")
        if order is None or order.symbol != c.symbol:
            raise not_found
        return order

    def _fill_before_cancel(self, p: dict) -> None:
        try:
            order = self._find(p, _Answer(109414, "order not exist"))
        except _Answer:
            return
        if order.open:
            self._execute(order, order.remaining, order.price or self._mark(order.symbol), maker=order.type == "LIMIT")

    # ------------------------------------------------------------------ JSON shapes

    @staticmethod
    def _qty_text(value: Decimal, c: _Contract) -> str:
        return wire.plain(value.quantize(c.step))

    @staticmethod
    def _price_text(value: Decimal, c: _Contract) -> str:
        """A price as BingX prints it: the contract's price decimals (``avgPrice`` "0.0000"
        for a 4-decimal contract in BINGX.md §2.4), rounded half-up."""
        return _fixed(value, c.price_precision)

    @classmethod
    def _avg_text(cls, o: SimOrder, c: _Contract) -> str:
        return cls._price_text(o.value / o.executed if o.executed else Decimal(0), c)

    @staticmethod
    def _value_text(value: Decimal, c: _Contract) -> str:
        """A traded value (``cumQuote``, a fill's ``amount``), exact: quantity x price never has
        more than quantity + price decimals, so it is printed with exactly that many (the
        DITA venue and CCXT derive fill prices from it). Nothing traded is "0", as in the
        samples of BINGX.md §2.4."""
        return "0" if value == 0 else _fixed(value, c.quantity_precision + c.price_precision)

    def _order_json(self, o: SimOrder) -> dict:
        c = self._contracts[o.symbol]
        empty_leg = {"type": "", "quantity": 0, "stopPrice": 0, "price": 0, "workingType": "", "stopGuaranteed": ""}
        return {
            "symbol": o.symbol, "orderId": o.order_id, "side": o.side, "positionSide": o.position_side,
            "type": o.type, "origQty": self._qty_text(o.quantity, c),
            "price": wire.plain(o.price.quantize(c.tick)) if o.price is not None else wire.plain(Decimal(0).quantize(c.tick)),
            "executedQty": self._qty_text(o.executed, c), "avgPrice": self._avg_text(o, c),
            "cumQuote": self._value_text(o.value, c), "stopPrice": "", "profit": _fixed(o.profit, USDT_PLACES),
            "commission": _fixed(o.commission, FEE_PLACES), "status": o.status, "time": o.time,
            "updateTime": o.update_time,
            "clientOrderId": o.client_order_id, "leverage": f"{o.leverage}X", "takeProfit": dict(empty_leg),
            "stopLoss": dict(empty_leg), "advanceAttr": 0, "positionID": 0, "takeProfitEntrustPrice": 0,
            "stopLossEntrustPrice": 0, "orderType": "", "workingType": "MARK_PRICE", "stopGuaranteed": False,
            "triggerOrderId": 0, "reduceOnly": o.reduce_only, "postOnly": o.time_in_force == "PostOnly",
            "closePosition": False, "timeInForce": o.time_in_force if o.type == "LIMIT" else "",
        }

    # ------------------------------------------------------------------ endpoints

    def _ep_server_time(self, p: dict) -> dict:
        return {"serverTime": self._now()}

    def _ep_contracts(self, p: dict) -> list:
        symbol = p.get("symbol")
        return [c for c in self._contracts_raw if not symbol or c["symbol"] == symbol]

    def _premium(self, symbol: str) -> dict:
        mark = wire.plain(self._mark(symbol))
        return {"symbol": symbol, "markPrice": mark, "indexPrice": mark, "lastFundingRate": "0.00010000",
                "nextFundingTime": (self._now() // 28_800_000 + 1) * 28_800_000}

    def _ep_premium_index(self, p: dict) -> Any:
        if p.get("symbol"):
            return self._premium(self._symbol(p).symbol)
        return [self._premium(s) for s in self._contracts if s in self._prices]

    def _ep_price(self, p: dict) -> dict:
        c = self._symbol(p)
        return {"symbol": c.symbol, "price": wire.plain(self._mark(c.symbol)), "time": self._now()}

    # BINGX.md §2.8 names the ticker, depth and klines paths but not their answers: the shapes
    # follow CCXT's parsers (parse_ticker, fetch_order_book, parse_ohlcv) and the captures
    # BINGX.md cites as sources (JKorf GetTicker / GetOrderBook / GetKlines). Every figure
    # comes from the simulated market: its mark prices as they were set, and its trades, which
    # are this account's fills (there is no one else).

    def _book(self, c: _Contract, levels: int) -> tuple[list, list]:
        """(bids, asks) as (price, size) pairs, best first. The market's own quote is at the
        mark on both sides (what a marketable order meets, up to the symbol's liquidity); the
        account's resting LIMIT orders sit at their prices."""
        mark = self._mark(c.symbol)
        budget = self._liquidity.get(c.symbol)
        at_mark = budget if budget is not None else (UNLIMITED_DEPTH_USDT / mark).quantize(c.step, ROUND_FLOOR)
        bids: dict[Decimal, Decimal] = collections.defaultdict(Decimal)
        asks: dict[Decimal, Decimal] = collections.defaultdict(Decimal)
        if at_mark > 0:
            bids[mark] += at_mark
            asks[mark] += at_mark
        for o in self._orders.values():
            if o.open and o.symbol == c.symbol and o.type == "LIMIT":
                (bids if o.side == "BUY" else asks)[o.price] += o.remaining
        return sorted(bids.items(), reverse=True)[:levels], sorted(asks.items())[:levels]

    def _ep_depth(self, p: dict) -> dict:
        c = self._symbol(p)
        bids, asks = self._book(c, self._int_param(p, "limit", default=20, high=1000))
        row = lambda level: [self._price_text(level[0], c), self._qty_text(level[1], c)]  # noqa: E731
        # Asks come farthest first, as in both captured BingX answers; CCXT sorts them.
        return {"T": self._now(), "bids": [row(b) for b in bids], "asks": [row(a) for a in reversed(asks)]}

    def _ticker(self, c: _Contract) -> dict:
        """24-hour statistics of one symbol."""
        now = self._now()
        since = now - DAY_MS
        mark = self._mark(c.symbol)
        history = self._history[c.symbol]
        opened = history[0][1]   # the market is younger than a day: its first price
        moves = []
        for t, price in history:
            if t <= since:
                opened = price   # the price in effect when the 24 hours began
            else:
                moves.append(price)
        trades = [f for f in self._trades if f["symbol"] == c.symbol]
        recent = [f for f in trades if f["time"] > since]
        ticker = {
            "symbol": c.symbol, "priceChange": self._price_text(mark - opened, c),
            "priceChangePercent": _fixed((mark - opened) / opened * 100, 2),
            "lastPrice": self._price_text(mark, c),
            "lastQty": self._qty_text(trades[-1]["quantity"] if trades else Decimal(0), c),
            "highPrice": self._price_text(max([opened, *moves]), c),
            "lowPrice": self._price_text(min([opened, *moves]), c),
            "volume": self._qty_text(sum((f["quantity"] for f in recent), Decimal(0)), c),
            "quoteVolume": self._value_text(sum((f["quantity"] * f["price"] for f in recent), Decimal(0)), c),
            "openPrice": self._price_text(opened, c), "openTime": since, "closeTime": now,
        }
        bids, asks = self._book(c, 1)
        if bids:
            ticker.update(bidPrice=self._price_text(bids[0][0], c), bidQty=self._qty_text(bids[0][1], c))
        if asks:
            ticker.update(askPrice=self._price_text(asks[0][0], c), askQty=self._qty_text(asks[0][1], c))
        return ticker

    def _ep_ticker(self, p: dict) -> Any:
        if p.get("symbol"):
            return self._ticker(self._symbol(p))   # one symbol: an object (capture)
        return [self._ticker(c) for s, c in self._contracts.items() if s in self._prices]   # all: a list

    def _ep_klines(self, p: dict) -> list:
        c = self._symbol(p)
        interval = p.get("interval") or ""
        if interval not in KLINE_INTERVALS:
            raise _invalid(f"interval must be one of {', '.join(KLINE_INTERVALS)}, got {interval!r}")
        step = KLINE_INTERVALS[interval]
        offset = WEEK_OFFSET_MS if interval == "1w" else 0
        limit = self._int_param(p, "limit", default=500, high=1440)
        start, end = self._int_param(p, "startTime", low=0), self._int_param(p, "endTime", low=0)
        self._mark(c.symbol)   # a symbol without a market has no candles
        history = list(self._history[c.symbol])
        trades = [f for f in self._trades if f["symbol"] == c.symbol]
        bucket = lambda t: (t - offset) // step * step + offset  # noqa: E731
        now = self._now()
        last = bucket(min(end, now) if end is not None else now)
        first = bucket(history[0][0])   # no candles before the market existed
        if start is not None:
            opens = range(max(bucket(start), first), last + 1, step)[:limit]
        else:
            opens = range(max(last - (limit - 1) * step, first), last + 1, step)
        candles = []
        i = j = 0
        price = None   # the price in effect at the start of the candle
        for t0 in opens:
            t1 = t0 + step
            while i < len(history) and history[i][0] < t0:
                price = history[i][1]
                i += 1
            inside = []
            while i < len(history) and history[i][0] < t1:
                inside.append(history[i][1])
                i += 1
            while j < len(trades) and trades[j]["time"] < t0:
                j += 1
            volume = Decimal(0)
            while j < len(trades) and trades[j]["time"] < t1:
                volume += trades[j]["quantity"]
                j += 1
            opened = price if price is not None else inside[0]
            prices = [opened, *inside]
            price = prices[-1]
            candles.append({"open": self._price_text(opened, c), "close": self._price_text(price, c),
                            "high": self._price_text(max(prices), c), "low": self._price_text(min(prices), c),
                            "volume": self._qty_text(volume, c), "time": t0})
        return candles   # oldest first; CCXT sorts them either way

    @staticmethod
    def _int_param(p: dict, name: str, default: int | None = None, low: int = 1, high: int | None = None) -> int | None:
        raw = p.get(name)
        if raw in (None, ""):
            return default
        if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
            bounds = f"{low} to {high}" if high is not None else f"at least {low}"
            raise _invalid(f"{name} must be a whole number, {bounds}, got {raw!r}")
        return int(raw)

    def _ep_place(self, p: dict) -> dict:
        return self._place(p)

    def _ep_test_order(self, p: dict) -> dict:
        return self._place(p, dry_run=True)

    def _ep_cancel(self, p: dict) -> dict:
        return {"order": self._cancel(self._find(p, _Answer(109414, "order not exist")))}

    def _cancel(self, order: SimOrder) -> dict:
        if order.status == "FILLED":
            raise _Answer(80018, "order is already filled")
        if not order.open:
            raise _Answer(80018, "order is already cancelled")
        self._cancelled(order)
        return self._order_json(order)

    def _ep_query(self, p: dict) -> dict:
        return {"order": self._order_json(self._find(p, _Answer(80016, "order not exist")))}

    def _ep_open_orders(self, p: dict) -> dict:
        symbol = p.get("symbol")
        if symbol:
            self._symbol(p)
        return {"orders": [self._open_order_json(o) for o in self._orders.values()
                           if o.open and (not symbol or o.symbol == symbol)]}

    def _open_order_json(self, o: SimOrder) -> dict:
        """An open order as the open-order endpoints show it (BINGX.md §2.5: 2.4 plus these)."""
        return {**self._order_json(o), "trailingStopRate": 0, "trailingStopDistance": 0, "priceRate": 0,
                "actPrice": 0, "positionId": 0}

    def _ep_open_order(self, p: dict) -> dict:
        """One open order (BINGX.md §2.5); one that has ended is not an open order any more."""
        order = self._find(p, _Answer(80016, "order not exist"))
        if not order.open:
            raise _Answer(80016, "order not exist")
        return {"order": self._open_order_json(order)}

    def _ep_batch_place(self, p: dict) -> dict:
        """Up to 5 orders in one request (BINGX.md §2.8), each checked and placed as a single
        order would be, in the order given. The answer lists the placed orders as the place
        answer does (``data.orders``, the shape CCXT's create_orders reads). [guess] BingX does
        not document a batch where only some orders fail: those are listed in ``failed``
        (code and msg, as the single order would have been refused), and a batch in which
        every order fails is refused with the first one's code."""
        raw = p.get("batchOrders")
        if not raw:
            raise _invalid("parameter batchOrders is must")
        try:
            items = json.loads(raw, parse_float=str, parse_int=str)
        except ValueError:
            raise _invalid("batchOrders must be a JSON array of orders") from None
        if not isinstance(items, list) or not items or not all(isinstance(item, dict) for item in items):
            raise _invalid("batchOrders must be a JSON array of orders")
        if len(items) > 5:
            raise _invalid(f"batchOrders holds at most 5 orders, got {len(items)}")
        placed, failed, refusals = [], [], []
        for index, item in enumerate(items):
            params = {k: _param_text(v) for k, v in item.items()}
            try:
                placed.append(self._place(params)["order"])
            except _Answer as refused:
                refusals.append(refused)
                coid = params.get("clientOrderID") or params.get("clientOrderId", "")
                failed.append({"index": index, "clientOrderID": coid, "code": refused.code, "msg": refused.msg})
        if not placed:
            raise refusals[0]
        return {"orders": placed, "failed": failed or None}

    def _ep_batch_cancel(self, p: dict) -> dict:
        """Cancels orders of one symbol by ``orderIdList`` or ``clientOrderIDList`` (JSON arrays,
        BINGX.md §2.8). Answer: ``success`` (the cancelled orders, as 2.4) and ``failed``
        (null when none), the shape of the captured answer and what CCXT's cancel_orders reads.
        [guess] A failed entry holds the id with ``errorCode`` and ``errorMessage``, the code a
        single cancel of that order would have got."""
        c = self._symbol(p)
        if p.get("orderIdList"):
            key, raw = "orderId", p["orderIdList"]
        elif p.get("clientOrderIDList") or p.get("clientOrderIdList"):
            key, raw = "clientOrderID", p.get("clientOrderIDList") or p.get("clientOrderIdList")
        else:
            raise _invalid("orderIdList or clientOrderIDList is must")
        try:
            ids = json.loads(raw, parse_int=str)
        except ValueError:
            raise _invalid(f"{key}List must be a JSON array") from None
        if not isinstance(ids, list) or not ids:
            raise _invalid(f"{key}List must be a non-empty JSON array")
        success, failed = [], []
        for ident in map(str, ids):
            try:
                success.append(self._cancel(self._find({"symbol": c.symbol, key: ident},
                                                       _Answer(109414, "order not exist"))))
            except _Answer as refused:
                failed.append({key: int(ident) if key == "orderId" and ident.isdigit() else ident,
                               "errorCode": refused.code, "errorMessage": refused.msg})
        return {"success": success, "failed": failed or None}

    def _ep_all_orders(self, p: dict) -> dict:
        """Order history (BINGX.md §2.8): the orders that have ended (filled, cancelled), oldest
        first, as 2.4 shows them. ``orderId`` lists that order and later ones, ``startTime`` /
        ``endTime`` bound the placing time; ``limit`` (default 500, at most 1000) keeps the
        latest, or the first ones from ``orderId`` on."""
        symbol = p.get("symbol")
        if symbol:
            self._symbol(p)
        limit = self._int_param(p, "limit", default=500, high=1000)
        start, end = self._int_param(p, "startTime", low=0), self._int_param(p, "endTime", low=0)
        from_id = self._int_param(p, "orderId", low=0)
        ended = [o for o in self._orders.values()   # placing order: ids and times ascend
                 if not o.open and (not symbol or o.symbol == symbol) and (start is None or o.time >= start)
                 and (end is None or o.time <= end) and (from_id is None or o.order_id >= from_id)]
        ended = ended[:limit] if from_id is not None else ended[-limit:]
        return {"orders": [self._order_json(o) for o in ended]}

    def _ep_fill_orders(self, p: dict) -> dict:
        """This account's fills (BINGX.md §2.8), oldest first, in ``data.fill_orders``. The
        fields are those of the captured answer (filledTm, volume, price, amount, commission,
        currency, orderId, liquidatedPrice, liquidatedMarginRatio, filledTime, clientOrderID,
        symbol) plus side, positionSide, tradeId and maker, which CCXT's parse_trade reads for
        the trade's side, id and taker/maker. ``startTs`` / ``endTs`` bound the fill time."""
        symbol = p.get("symbol")
        if symbol:
            self._symbol(p)
        unit = p.get("tradingUnit") or "COIN"
        if unit not in ("COIN", "CONT"):   # USDT-M contracts are 1 coin each: the same numbers
            raise _invalid(f"tradingUnit must be COIN or CONT, got {unit!r}")
        order_id = self._int_param(p, "orderId", low=0)
        start, end = self._int_param(p, "startTs", low=0), self._int_param(p, "endTs", low=0)
        fills = [(o, f) for o in self._orders.values() for f in o.fills
                 if (not symbol or o.symbol == symbol) and (order_id is None or o.order_id == order_id)
                 and (start is None or f["time"] >= start) and (end is None or f["time"] <= end)]
        fills.sort(key=lambda of: (of[1]["time"], of[1]["trade_id"]))
        out = []
        for o, f in fills:
            c = self._contracts[o.symbol]
            out.append({
                "filledTm": _iso_utc(f["time"]), "volume": self._qty_text(f["quantity"], c),
                "price": self._price_text(f["price"], c), "amount": self._value_text(f["quantity"] * f["price"], c),
                "commission": _fixed(-f["fee"], FEE_PLACES), "currency": "USDT", "orderId": str(o.order_id),
                "liquidatedPrice": "", "liquidatedMarginRatio": "", "filledTime": _iso_utc8(f["time"]),
                "clientOrderID": o.client_order_id, "symbol": o.symbol,
                "side": o.side, "positionSide": o.position_side, "tradeId": str(f["trade_id"]), "maker": f["maker"],
            })
        return {"fill_orders": out}

    def _ep_cancel_all(self, p: dict) -> dict:
        c = self._symbol(p)
        done = []
        for o in self._orders.values():
            if o.open and o.symbol == c.symbol:
                self._cancelled(o)
                done.append(self._order_json(o))
        return {"success": done, "failed": None}

    def _ep_get_leverage(self, p: dict) -> dict:
        c = self._symbol(p)
        return {"longLeverage": self._lev(c.symbol, "LONG"), "shortLeverage": self._lev(c.symbol, "SHORT"),
                "maxLongLeverage": c.max_long, "maxShortLeverage": c.max_short}

    def _ep_set_leverage(self, p: dict) -> dict:
        c = self._symbol(p)
        side = p.get("side", "")
        allowed = ("LONG", "SHORT") if self.hedge else ("BOTH",)
        if side not in allowed:
            mode = "Hedge" if self.hedge else "One-way"
            raise _Answer(109400, f"In the {mode} mode, the 'side' field can only be set to {' or '.join(allowed)}.")
        raw = p.get("leverage", "")
        if not raw.isdigit():
            raise _invalid(f"leverage must be a whole number, got {raw!r}")
        leverage = int(raw)
        limit = c.max_long if side != "SHORT" else c.max_short
        if not 1 <= leverage <= limit:
            raise _Answer(109400, f"leverage must be between 1 and {limit} for {c.symbol}")
        self._leverage[(c.symbol, side)] = leverage
        return {"leverage": leverage, "symbol": c.symbol}

    def _position_figures(self, symbol: str | None = None) -> list[dict]:
        """The open positions with their money figures rounded as BingX prints them
        (USDT_PLACES). The balance adds up these rounded figures, so its unrealizedProfit
        and usedMargin are exactly the sums of what the positions listing shows."""
        out = []
        for (s, side), pos in self._positions.items():
            if not pos.amount or (symbol and s != symbol):
                continue
            mark = self._prices.get(s, pos.avg)
            direction = side if self.hedge else ("LONG" if pos.amount > 0 else "SHORT")
            size = abs(pos.amount)
            sign = 1 if direction == "LONG" else -1
            unrealized = (mark - pos.avg) * size * sign
            lev = self._lev(s, side)
            margin = size * pos.avg / lev
            out.append({"key": (s, side), "pos": pos, "direction": direction, "size": size, "mark": mark,
                        "leverage": lev, "isolated": self._isolated(s),
                        "unrealized": _round(unrealized, USDT_PLACES), "margin": _round(margin, USDT_PLACES),
                        "ratio": _round(unrealized / margin, RATIO_PLACES)})
        return out

    def _balance_entry(self) -> dict:
        figures = self._position_figures()
        unrealized = sum((f["unrealized"] for f in figures), Decimal(0))
        cross_unrealized = sum((f["unrealized"] for f in figures if not f["isolated"]), Decimal(0))
        used = sum((f["margin"] for f in figures), Decimal(0))
        frozen = _round(self._frozen_margin(), USDT_PLACES)
        balance = _round(self.wallet, USDT_PLACES)
        # Derived from the printed parts, so equity = balance + unrealizedProfit and
        # availableMargin = balance + cross unrealized - usedMargin - freezedMargin hold to
        # the last digit a client sees.
        fixed = lambda value: _fixed(value, USDT_PLACES)  # noqa: E731
        return {"userId": "1000001", "asset": "USDT", "balance": fixed(balance), "equity": fixed(balance + unrealized),
                "unrealizedProfit": fixed(unrealized), "realisedProfit": fixed(self.realised),
                "availableMargin": fixed(balance + cross_unrealized - used - frozen), "usedMargin": fixed(used),
                "freezedMargin": fixed(frozen), "shortUid": "1000001"}

    def _ep_balance_v3(self, p: dict) -> list:
        return [self._balance_entry()]

    def _ep_balance_v2(self, p: dict) -> dict:
        return {"balance": self._balance_entry()}

    def _ep_positions(self, p: dict) -> list:
        symbol = p.get("symbol")
        if symbol:
            self._symbol(p)
        out = []
        for f in self._position_figures(symbol):
            s, pos, c = f["key"][0], f["pos"], self._contracts[f["key"][0]]
            fixed = lambda value: _fixed(value, USDT_PLACES)  # noqa: E731
            out.append({
                "positionId": str(pos.position_id), "symbol": s, "currency": "USDT",
                "positionAmt": self._qty_text(f["size"], c), "availableAmt": self._qty_text(f["size"], c),
                "positionSide": f["direction"], "isolated": f["isolated"],
                "avgPrice": self._price_text(pos.avg, c),
                "initialMargin": fixed(f["margin"]), "margin": fixed(f["margin"]), "leverage": f["leverage"],
                "unrealizedProfit": fixed(f["unrealized"]), "realisedProfit": fixed(pos.realised),
                "liquidationPrice": 0, "pnlRatio": _fixed(f["ratio"], RATIO_PLACES),
                "maxMarginReduction": fixed(Decimal(0)), "riskRate": _fixed(Decimal(0), RATIO_PLACES),
                "markPrice": wire.plain(f["mark"]), "positionValue": fixed(f["size"] * f["mark"]),
                "onlyOnePosition": not self.hedge, "updateTime": pos.update_time,
            })
        return out

    def _ep_get_mode(self, p: dict) -> dict:
        return {"dualSidePosition": "true" if self.hedge else "false"}

    def _ep_set_mode(self, p: dict) -> dict:
        value = p.get("dualSidePosition")
        if value not in ("true", "false"):
            raise _invalid(f"dualSidePosition must be true or false, got {value!r}")
        if any(pos.amount for pos in self._positions.values()) or any(o.open for o in self._orders.values()):
            raise _Answer(109400, "The position mode cannot be changed while there are positions or open orders")
        self.hedge = value == "true"
        return {"dualSidePosition": value}

    def _ep_get_margin_type(self, p: dict) -> dict:
        """``{"marginType": "CROSSED"}``: the captured answer, and what CCXT's parse_margin_mode reads."""
        c = self._symbol(p)
        return {"marginType": self._margin_type.get(c.symbol, "CROSSED")}

    def _ep_set_margin_type(self, p: dict) -> Any:
        """``marginType`` ISOLATED or CROSSED, per symbol (BINGX.md §2.8); the captured answer is
        code and msg alone. [guess] Refused (109400) while the symbol has a position or open
        orders, as the position mode is."""
        c = self._symbol(p)
        value = p.get("marginType")
        if value not in ("ISOLATED", "CROSSED"):
            raise _invalid(f"marginType must be ISOLATED or CROSSED, got {value!r}")
        if value != self._margin_type.get(c.symbol, "CROSSED"):
            busy = (any(pos.amount for (s, _), pos in self._positions.items() if s == c.symbol)
                    or any(o.open and o.symbol == c.symbol for o in self._orders.values()))
            if busy:
                raise _Answer(109400, "The margin mode cannot be changed while there are positions or open orders")
        self._margin_type[c.symbol] = value
        return NO_DATA

    def _ep_close_all(self, p: dict) -> dict:
        """Closes every open position (of ``symbol`` if given) with a MARKET order at the mark
        (BINGX.md §2.8); the orders and fills show in the order history like any other. Answer:
        ``success`` lists the closed positions' ids as JSON integers and ``failed`` is null when
        none failed: the shape of the captured answer, whose ids CCXT's close_all_positions
        reads as position ids. [guess] A symbol closed to API trading fails, listed in
        ``failed`` with the code a close order would get."""
        symbol = p.get("symbol")
        if symbol:
            self._symbol(p)
        success, failed = [], []
        for (s, side), pos in list(self._positions.items()):
            if not pos.amount or (symbol and s != symbol):
                continue
            if not self._contracts[s].api_close:
                failed.append({"positionId": pos.position_id, "errorCode": 101415,
                               "errorMessage": f"{s} is currently restricted from API closing"})
                continue
            success.append(pos.position_id)
            self._close_position(s, side, pos)
        return {"success": success, "failed": failed or None}

    def _close_position(self, symbol: str, side: str, pos: _Position) -> None:
        """A MARKET order for the whole position, taken at the mark. It is not held to the
        pending reduce-only orders (as placing it through the order endpoint would be): the
        exchange closes the position, and those orders find nothing left to reduce."""
        long = pos.amount > 0 if side == "BOTH" else side == "LONG"
        now = self._now()
        order = SimOrder(order_id=next(self._ids), symbol=symbol, side="SELL" if long else "BUY", position_side=side,
                         type="MARKET", quantity=abs(pos.amount), price=None, time_in_force="GTC",
                         client_order_id="", reduce_only=side == "BOTH", leverage=self._lev(symbol, side), time=now,
                         update_time=now)
        self._orders[order.order_id] = order
        self._publish(lambda: self._order_event(order, "NEW"))
        self._execute(order, order.quantity, self._mark(symbol), maker=False)

    def _cancelled(self, o: SimOrder) -> None:
        """The order ends cancelled (REST ``CANCELLED``; the stream says ``CANCELED``)."""
        o.status = "CANCELLED"
        o.update_time = self._now()
        self._publish(lambda: self._order_event(o, "CANCELED"))

    # ------------------------------------------------------------------ user data stream
    # BINGX.md §2.9. Keys live for listen_key_ttl; every account event goes to every
    # connection of a valid key (the simulator has one account). Frames are gzip JSON in
    # binary WebSocket frames. The exchange queues them on each connection under the lock;
    # each connection's handler thread writes its own (_run_stream).

    def _ep_listen_key_create(self, p: dict) -> _Bare:
        """A new key, a bare ``{"listenKey": "<64 hex>"}``. [guess] Each call makes another
        key; the earlier ones stay valid until they expire or are deleted."""
        self._expire_listen_keys()
        key = secrets.token_hex(32)
        self._listen_keys[key] = self._now() + round(self.listen_key_ttl * 1000)
        return _Bare(200, {"listenKey": key})

    def _ep_listen_key_extend(self, p: dict) -> _Bare:
        """Valid for another ``listen_key_ttl`` from now. The docs give only HTTP statuses:
        200 done, 204 no listenKey sent, 404 no such key (an expired key is gone)."""
        key = self._known_listen_key(p)
        if isinstance(key, _Bare):
            return key
        self._listen_keys[key] = self._now() + round(self.listen_key_ttl * 1000)
        return _Bare(200)

    def _ep_listen_key_delete(self, p: dict) -> _Bare:
        """The key ends now; its connections are closed (1000, "listenKey deleted")."""
        key = self._known_listen_key(p)
        if isinstance(key, _Bare):
            return key
        del self._listen_keys[key]
        for stream in self._streams:
            if stream.listen_key == key:
                stream.push(_Close(1000, "listenKey deleted"))
        return _Bare(200)

    def _known_listen_key(self, p: dict) -> str | _Bare:
        key = p.get("listenKey")
        if not key:
            return _Bare(204)
        self._expire_listen_keys()
        return key if key in self._listen_keys else _Bare(404)

    def _expire_listen_keys(self) -> None:
        """Drops the keys whose time is up: their connections get ``listenKeyExpired`` and
        then a Close (1000, "listenKey expired"). Under the lock."""
        now = self._now()
        for key, until in list(self._listen_keys.items()):
            if until <= now:
                del self._listen_keys[key]
                frame = _frame({"e": "listenKeyExpired", "E": now, "listenKey": key})
                for stream in self._streams:
                    if stream.listen_key == key:
                        stream.push(frame)
                        stream.push(_Close(1000, "listenKey expired"))

    def _publish(self, build: Callable[[], dict]) -> None:
        """Queues one account event on every connection of a valid key. ``build`` makes the
        event, only when someone listens. Under the lock, so events keep their order."""
        self._expire_listen_keys()
        live = [stream for stream in self._streams if stream.listen_key in self._listen_keys]
        if live:
            event = build()
            if self._dropping.get(event["e"]):
                self._dropping[event["e"]] -= 1
                return
            frame = _frame(event)
            for stream in live:
                stream.push(frame)

    def _order_event(self, o: SimOrder, execution: str, fill: dict | None = None) -> dict:
        """``ORDER_TRADE_UPDATE`` for ``o`` as it is now. ``execution`` is ``x``: NEW,
        TRADE (``fill`` is that trade: ``l``/``L``/``n``/``rp``/``td``/``tv`` are its own;
        ``z``/``ap`` the order's totals) or CANCELED. Without a fill those are zero."""
        qty, price = (fill["quantity"], fill["price"]) if fill else (Decimal(0), Decimal(0))
        fee, pnl = (fill["fee"], fill["pnl"]) if fill else (Decimal(0), Decimal(0))
        return {"e": "ORDER_TRADE_UPDATE", "E": self._now(), "T": o.update_time, "o": {
            "s": o.symbol, "c": o.client_order_id, "i": o.order_id, "S": o.side, "o": o.type,
            "q": _wide(o.quantity), "p": _wide(o.price or Decimal(0)), "sp": _wide(Decimal(0)),
            "ap": _wide(o.value / o.executed if o.executed else Decimal(0)),
            "x": execution, "X": STREAM_STATUS.get(o.status, o.status), "N": "USDT", "n": _wide(-fee),
            "T": fill["time"] if fill else o.update_time, "wt": "MARK_PRICE", "ps": o.position_side,
            "rp": _wide(pnl), "z": _wide(o.executed), "l": _wide(qty), "L": _wide(price), "ro": o.reduce_only,
            "sg": False, "ti": 0, "td": str(fill["trade_id"]) if fill else "0", "tv": _wide(qty * price)}}

    def _account_event(self, key: tuple[str, str], was_long: bool, change: Decimal) -> dict:
        """``ACCOUNT_UPDATE`` after a fill: the USDT wallet (``wb`` is REST's ``balance``,
        rounded as REST prints it; ``bc`` the fill's exact change of the wallet, its realised
        PnL less its fee; ``cw`` ``wb`` less the isolated margins [guess]) and the
        position the fill changed, with the figures REST's positions show now (``pa``
        ``positionAmt``, ``ep`` ``avgPrice``, ``up`` ``unrealizedProfit``, ``cr``
        ``realisedProfit``, ``ps`` ``positionSide``). A position the fill closed shows
        ``pa`` zero, on the side it had."""
        symbol, side = key
        c, pos = self._contracts[symbol], self._positions[key]
        figures = self._position_figures()
        shown = next((f for f in figures if f["key"] == key), None)
        isolated = self._isolated(symbol)
        row = {"s": symbol, "pa": self._qty_text(shown["size"] if shown else Decimal(0), c),
               "ep": self._price_text(pos.avg if shown else Decimal(0), c),
               "up": _wide(shown["unrealized"] if shown else Decimal(0)), "mt": "isolated" if isolated else "cross",
               "iw": _wide(shown["margin"] if shown and isolated else Decimal(0)),
               "ps": shown["direction"] if shown else (side if self.hedge else ("LONG" if was_long else "SHORT")),
               "cr": _wide(_round(pos.realised, USDT_PLACES))}
        balance = _round(self.wallet, USDT_PLACES)
        isolated_margin = sum((f["margin"] for f in figures if f["isolated"]), Decimal(0))
        wallet = {"a": "USDT", "wb": _wide(balance), "cw": _wide(balance - isolated_margin),
                  "bc": _wide(change)}
        return {"e": "ACCOUNT_UPDATE", "E": self._now(), "a": {"m": "ORDER", "B": [wallet], "P": [row]}}

    def _serve_stream(self, h: BaseHTTPRequestHandler, raw_query: str) -> None:
        """``GET /swap-market?listenKey=<key>`` with a WebSocket upgrade: the handshake here,
        then the connection runs in this handler thread until it ends. Not an upgrade: HTTP
        400. A key that does not exist or has expired: HTTP 404 and no connection [guess:
        BINGX.md does not say; a refused handshake is what CCXT reports at once]."""
        key = dict(parse_qsl(raw_query)).get("listenKey", "")
        entry = {"endpoint": "user_stream", "method": "GET", "path": STREAM_PATH, "query": raw_query,
                 "params": {"listenKey": key}, "authenticated": False, "fault": None, "answer": None}
        self._record(entry)
        h.close_connection = True
        nonce = h.headers.get("Sec-WebSocket-Key", "").strip()
        if not (h.headers.get("Upgrade", "").lower() == "websocket" and nonce
                and "upgrade" in h.headers.get("Connection", "").lower()
                and h.headers.get("Sec-WebSocket-Version") == "13"):
            entry["answer"] = 400
            self._send_text(h, 400, "a WebSocket upgrade (version 13) is expected here", "text/plain")
            return
        with self._lock:
            self._expire_listen_keys()
            stream = _Stream(key) if key in self._listen_keys else None
            if stream is not None:
                self._streams.append(stream)   # from now on it misses no event
        if stream is None:
            entry["answer"] = 404
            self._send_text(h, 404, "listenKey does not exist", "text/plain")
            return
        entry["authenticated"], entry["answer"] = True, 101
        try:
            h.send_response(101)
            h.send_header("Upgrade", "websocket")
            h.send_header("Connection", "Upgrade")
            h.send_header("Sec-WebSocket-Accept",
                          base64.b64encode(hashlib.sha1(nonce.encode() + WS_GUID).digest()).decode())
            h.end_headers()
            self._run_stream(h.connection, stream)
        except (OSError, ProtocolError):   # the client went away, or broke the protocol
            log.debug("simulator: user stream %s ended with an error", key[:8], exc_info=True)
        finally:
            with self._lock:
                self._streams.remove(stream)
            stream.release()

    def _run_stream(self, sock: socket.socket, stream: _Stream) -> None:
        """The connection after the handshake: framing by wsproto. Sends the queued events,
        ``Ping`` every ``ping_interval`` (gzip, like every frame: BingX's own demo client
        gunzips each frame before comparing it with "Ping"), notices the key's expiry,
        answers the client's protocol pings and Close, counts its "Pong"s (never required:
        BINGX.md does not say BingX drops a client that does not answer). Returns when the
        connection is closed."""
        ws = wsproto.Connection(wsproto.ConnectionType.SERVER)
        sock.settimeout(STREAM_SEND_TIMEOUT)   # a client that stops reading cannot hold us for ever

        def send(event) -> None:
            sock.sendall(ws.send(event))

        next_ping = time.monotonic() + self.ping_interval
        closing = None     # once our Close is sent: until when we wait for the client's
        text: list[str] = []
        while True:
            with self._lock:
                until = self._listen_keys.get(stream.listen_key)
            now = time.monotonic()
            wait = (closing if closing is not None else next_ping) - now
            if until is not None and closing is None:
                wait = min(wait, (until - self._now()) / 1000)
            readable = select.select([sock, stream.wake], [], [], max(wait, 0.0))[0]
            if stream.wake in readable:
                stream.drain_wake()
            if sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, (TextMessage, BytesMessage)):
                        text.append(event.data if isinstance(event.data, str) else event.data.decode("latin-1"))
                        if event.message_finished:
                            if "".join(text) == "Pong":
                                stream.pongs += 1
                            text.clear()
                    elif isinstance(event, Ping):
                        send(event.response())
                    elif isinstance(event, CloseConnection):
                        if ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
                            send(event.response())
                        return
            if until is not None and self._now() >= until:
                with self._lock:
                    self._expire_listen_keys()   # queues listenKeyExpired and a Close here
            while stream.outbox and closing is None:
                item = stream.outbox.popleft()
                if isinstance(item, _Close):
                    send(CloseConnection(code=item.code, reason=item.reason))
                    closing = time.monotonic() + STREAM_CLOSE_WAIT
                else:
                    send(BytesMessage(data=item))
            if closing is not None:
                if time.monotonic() >= closing:
                    return
            elif time.monotonic() >= next_ping:
                send(BytesMessage(data=PING_FRAME))
                next_ping = time.monotonic() + self.ping_interval


def _wide(value: Decimal) -> str:
    """A number of the user stream: 8 decimals (BINGX.md §2.9, ``"0.10000000"``)."""
    return _fixed(value, STREAM_PLACES)


def _frame(event: dict) -> bytes:
    """One stream event as BingX sends it: compact JSON, gzip-compressed."""
    return gzip.compress(json.dumps(event, separators=(",", ":"), default=_json_default).encode(), mtime=0)


def _param_text(value: Any) -> str:
    """A parameter from a JSON object (a JSON body, a batch order) as query text. Numbers are
    parsed as their text (``parse_float=str``), so they arrive exactly as sent."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def _scramble(answer: dict) -> dict:
    """The same answer with the wrong JSON types where a client expects strings/integers."""
    def walk(value):
        if isinstance(value, dict):
            return {k: ([v] if k in ("orderId", "executedQty", "status", "orders", "serverTime") else walk(v))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(answer)


# ------------------------------------------------------------------ command line


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--api-key", help="the API key clients must send (default: a random one, printed)")
    parser.add_argument("--api-secret", help="the secret they sign with (default: a random one, printed)")
    parser.add_argument("--balance", default="100000", help="starting USDT balance (default 100000)")
    parser.add_argument("--price", action="append", default=[], metavar="SYMBOL=PRICE",
                        help="initial mark price, e.g. BTC-USDT=60000 (repeatable)")
    parser.add_argument("--liquidity", action="append", default=[], metavar="SYMBOL=QTY",
                        help="most that trades per price move, e.g. BTC-USDT=0.005 (repeatable)")
    parser.add_argument("--hedge", action="store_true", help="hedge position mode (default one-way)")
    parser.add_argument("--strict", action="store_true", help="refuse over-precise prices/quantities instead of truncating")
    parser.add_argument("--no-rate-limits", action="store_true", help="do not enforce BingX's request rates")
    parser.add_argument("--place-answer", choices=PLACE_ANSWERS, default="documented",
                        help="documented: place answers hold only BINGX.md's documented fields (default); "
                             "full: with status, executedQty and avgPrice too")
    parser.add_argument("--listen-key-ttl", type=float, default=3600.0, metavar="SECONDS",
                        help="how long a user-stream listenKey lives unless extended (default 3600)")
    parser.add_argument("--ping-interval", type=float, default=5.0, metavar="SECONDS",
                        help="seconds between the user stream's Ping frames (default 5)")
    return parser


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        symbol, sep, value = item.partition("=")
        if not sep or not symbol or not value:
            raise SystemExit(f"dita-bingx-sim: {option} takes SYMBOL=VALUE, got {item!r}")
        out[symbol] = value
    return out


def run(args: argparse.Namespace) -> int:
    """Runs a simulator until interrupted (Ctrl-C or SIGTERM)."""
    key = args.api_key or "sim-" + secrets.token_hex(8)
    secret = args.api_secret or secrets.token_hex(16)
    try:
        sim = BingXSimulator(api_key=key, api_secret=secret, host=args.host, port=args.port, balance=args.balance,
                             prices=_pairs(args.price, "--price"), liquidity=_pairs(args.liquidity, "--liquidity"),
                             position_mode="hedge" if args.hedge else "one-way", strict=args.strict,
                             rate_limits=not args.no_rate_limits, place_answer=args.place_answer,
                             listen_key_ttl=args.listen_key_ttl, ping_interval=args.ping_interval)
        sim.start()
    except (ValueError, OSError) as exc:
        print(f"dita-bingx-sim: {exc}", file=sys.stderr)
        return 2
    print(f"BingX simulator listening on {sim.base_url}", flush=True)
    print(f"user data stream: ws://{sim.host}:{sim.port}{STREAM_PATH}?listenKey=<key>", flush=True)
    if not args.api_key or not args.api_secret:   # generated here, so the user needs to see them
        print(f"api key: {key}\napi secret: {secret}", flush=True)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``dita-bingx-sim``: run a BingX simulator on loopback and print its URL."""
    parser = add_arguments(argparse.ArgumentParser(prog="dita-bingx-sim", description=main.__doc__))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
