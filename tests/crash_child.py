"""The process the crash test kills: a long journaled session against the BingX simulator.

Usage: python crash_child.py BASE_URL API_KEY API_SECRET JOURNAL RUN_TAG SEED

It starts from the journal when one exists (``Kernel.recover``: the latest checkpoint and the
records after it, then ask the venue), else with a fresh kernel; it writes a checkpoint every
CHECKPOINT_EVERY records and continues the journal in a new file every ROTATE_EVERY, so that
kills land before, during and after checkpoints and rotations; prints READY; then trades until it is killed: LIMIT and MARKET
entries, partial fills (the simulator's liquidity is limited and the test moves its price),
cancels of entries and exits, exits in one, two or three legs. Intent ids carry RUN_TAG so
that no two lives of the session reuse one.
"""

from __future__ import annotations

import random
import sys
from decimal import Decimal
from pathlib import Path

import dita

SLOTS = 3
ASSET = "BTC-USDT"
SIZES = [Decimal(s) for s in ("0.002", "0.003", "0.005", "0.008")]
CHECKPOINT_EVERY = 120
ROTATE_EVERY = 1000
LEGS = [(), (Decimal("0.5"), Decimal("0.5")), (Decimal("0.3"), Decimal("0.3"), Decimal("0.4"))]


def main() -> None:
    base_url, key, secret, journal, tag, seed = sys.argv[1:7]
    # Hedge mode: in one-way mode the exchange nets all slots of a symbol into one position,
    # so a LONG slot and a SHORT slot would cancel out and their reduce-only exits be refused.
    options = {"base_url": base_url, "api_key": key, "api_secret": secret, "retry_backoff": 0.01, "timeout": 5.0,
               "position_mode": "hedge", "pace": False}  # the test simulator does not throttle
    if Path(journal).exists():
        k = dita.Kernel.recover(journal, venue="bingx", venue_options=options, checkpoint_every=CHECKPOINT_EVERY,
                                rotate_every=ROTATE_EVERY)
    else:
        k = dita.Kernel(venue="bingx", slots=SLOTS, capital=Decimal("100000"), journal=journal, venue_options=options,
                        checkpoint_every=CHECKPOINT_EVERY, rotate_every=ROTATE_EVERY)
    print("READY", flush=True)
    rng = random.Random(int(seed))
    n = 0
    while True:
        n += 1
        slot = rng.randrange(SLOTS)
        state = k.slot(slot).fsm_state
        intent_id = f"{tag}-{n}"
        price = k.venue.mark_price(ASSET)
        if state in ("IDLE", "TRADE_TERMINAL_WRITTEN"):
            limit = rng.random() < 0.7
            k.process_intent(dita.KernelIntent(
                "ENTER", slot, intent_id, trade_id=f"T{intent_id}", asset=ASSET, side=rng.choice(["LONG", "SHORT"]),
                target_size=rng.choice(SIZES), order_type="LIMIT" if limit else "MARKET",
                limit_price=(price + rng.randint(-40, 40)) if limit else None, exit_leg_ratios=rng.choice(LEGS)))
        elif state == "ENTRY_WORKING" and rng.random() < 0.25:
            k.process_intent(dita.KernelIntent("CANCEL", slot, intent_id))
        elif state == "POSITION_OPEN":
            limit = rng.random() < 0.5
            k.process_intent(dita.KernelIntent("EXIT", slot, intent_id, order_type="LIMIT" if limit else "MARKET",
                                               limit_price=(price + rng.randint(-40, 40)) if limit else None))
        elif state == "EXIT_WORKING" and rng.random() < 0.15:
            k.process_intent(dita.KernelIntent("CANCEL", slot, intent_id))
        try:
            k.poll()
        except dita.VenueError:
            pass  # a failed poll is retried on the next round


if __name__ == "__main__":
    main()
