"""Crash test: a journaled session is killed with SIGKILL at random instants, again and again.

The venue outlives the process, as an exchange does: a BingX simulator runs in this test's
process, its price moving all the time, while ``crash_child.py`` trades against it through
the real ``dita-bingx`` plugin and is killed. After each kill the kernel is recovered from
the journal (replay, then the venue is asked about every working order) and checked:

- no fill lost and none applied twice: for every order the kernel ever sent, what the kernel
  applied equals what the exchange executed (an order the exchange never received has no
  fills on either side);
- every invariant of the spec holds (a restore of the snapshot checks them all);
- the account identity is exact: capital = start + realized, realized = gross - fees;
- recovery is deterministic: replaying the whole journal offline gives the same snapshot,
  and arrives at the state each checkpoint recorded (the child writes one every 120
  records; recovery starts from the latest), through every file of the journal (the child
  continues it in a new file every 1000 records; recovery follows the chain).

The next child then continues the same journal, so each life starts from a recovery.
``DITA_CRASH_KILLS`` sets the number of kills (default 50).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

import dita
from dita.cli_journal import OfflineVenue
from dita.journal import journal_chain

dita_bingx = pytest.importorskip("dita_bingx")
from dita_bingx.simulator import BingXSimulator  # noqa: E402

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = int(os.environ.get("DITA_CRASH_KILLS", "50"))
ASSET = "BTC-USDT"


class PriceWalk(threading.Thread):
    """Moves the simulator's price every few milliseconds, so resting orders fill, partly."""

    def __init__(self, sim: BingXSimulator, seed: int):
        super().__init__(daemon=True)
        self.sim, self.rng, self.stop = sim, random.Random(seed), threading.Event()
        self.moving = threading.Event()
        self.moving.set()
        self.idle = threading.Event()

    def run(self) -> None:
        price = Decimal(60000)
        while not self.stop.wait(0.004):
            if not self.moving.is_set():
                self.idle.set()
                self.moving.wait(0.05)
                continue
            self.idle.clear()
            price = min(max(price + self.rng.randint(-25, 25), Decimal(59700)), Decimal(60300))
            self.sim.set_price(ASSET, price)

    def pause(self) -> None:
        """Holds the market still (the recovery is compared with the exchange's figures)."""
        self.moving.clear()
        self.idle.wait(1.0)

    def resume(self) -> None:
        self.moving.set()


def _start_child(sim, key, secret, journal, tag, seed) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, str(CHILD), sim.base_url, key, secret, str(journal), tag, str(seed)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    if line.strip() != "READY":
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"the session did not start (life {tag}): {line}{out}\n{err}")
    return child


def _check(k: dita.Kernel, sim: BingXSimulator, journal: Path, life: int) -> int:
    snap = k.snapshot()
    # Every invariant of every slot and of the account: restore refuses a snapshot that breaks one.
    dita.Kernel.restore(snap, venue=OfflineVenue())
    a = k.account
    assert a.capital == a.starting_capital + a.realized_pnl, f"life {life}: capital identity"
    assert a.realized_pnl == a.gross_realized_pnl - a.fees_paid, f"life {life}: PnL identity"
    fills = 0
    for coid in snap["orders"]:
        applied = k.order_progress(coid).filled_size
        at_exchange = sim.order(coid)
        executed = Decimal(at_exchange["executedQty"]) if at_exchange else Decimal(0)
        assert applied == executed, (f"life {life}: order {coid}: the kernel applied {applied}, the exchange "
                                     f"executed {executed}; recovery report {k.recovery_report}")
        fills += applied > 0
    # Deterministic: the journal alone rebuilds the very same kernel, from its first record
    # (checking every checkpoint on the way) as from its latest checkpoint.
    for from_checkpoint in (False, True):
        offline = dita.Kernel.recover(journal, venue=OfflineVenue(), sync=False, from_checkpoint=from_checkpoint,
                                      read_only=True)
        try:
            assert offline.snapshot() == snap, (f"life {life}: an offline replay (from_checkpoint={from_checkpoint}) "
                                                "differs from the recovered kernel")
        finally:
            offline.close()
    return fills


def test_kill_9_at_random_instants_loses_no_fill_and_applies_none_twice(tmp_path):
    rng = random.Random(20261124)
    key, secret = "crash-key", "crash-secret-0123456789"
    journal = tmp_path / "session.sqlite"
    options = {"api_key": key, "api_secret": secret, "retry_backoff": 0.01, "timeout": 5.0, "position_mode": "hedge",
               "pace": False}
    with BingXSimulator(api_key=key, api_secret=secret, balance="10000000", liquidity={ASSET: "0.002"},
                        prices={ASSET: "60000"}, position_mode="hedge", rate_limits=False) as sim:
        walk = PriceWalk(sim, rng.randrange(10**9))
        walk.start()
        options["base_url"] = sim.base_url
        kills = applied_orders = 0
        try:
            for life in range(KILLS):
                child = _start_child(sim, key, secret, journal, f"L{life}", rng.randrange(10**9))
                time.sleep(rng.uniform(0.05, 0.8))
                child.send_signal(signal.SIGKILL)
                child.communicate()
                assert child.returncode == -signal.SIGKILL
                kills += 1
                walk.pause()
                k = dita.Kernel.recover(journal, venue="bingx", venue_options=options)
                try:
                    applied_orders = _check(k, sim, journal, life)
                finally:
                    k.close()
                    walk.resume()
        finally:
            walk.stop.set()
            walk.join()
    assert kills == KILLS
    # The session really traded: many orders were sent and filled across the lives.
    assert applied_orders >= KILLS // 2, f"only {applied_orders} orders filled in {KILLS} lives"
    # And recoveries really started from checkpoints, in a journal continued in new files.
    files, stale = journal_chain(journal)
    checkpoints = 0
    for path in files:
        with dita.Journal.open(path) as j:
            checkpoints += sum(1 for r in j.records() if r.kind == "checkpoint")
    assert checkpoints >= KILLS // 5, f"only {checkpoints} checkpoints in {KILLS} lives"
    assert len(files) >= 3 and not stale, f"the journal was rotated into {len(files)} files"
