from decimal import Decimal as D

from conftest import assert_account_identity, enter, exit_, make_kernel


def test_market_round_trip_settles_exactly():
    k = make_kernel(fee_rate="0.0004")
    out = enter(k)
    assert (out.accepted, out.diagnostic_code, out.state) == (True, "OK", "POSITION_OPEN")
    assert out.transitions == (("IDLE", "ENTER", "ORDER_REQUESTED"), ("ORDER_REQUESTED", "ORDER_ACK", "ENTRY_WORKING"),
                               ("ENTRY_WORKING", "FULL_FILL", "POSITION_OPEN"))
    k.venue.set_price("BTC-USDT", "61000")
    out = exit_(k)
    assert out.state == "TRADE_TERMINAL_WRITTEN"
    # gross 0.010 * 1000 = 10; fees 0.010*60000*0.0004 + 0.010*61000*0.0004 = 0.24 + 0.244
    assert k.account.realized_pnl == D("9.516")
    assert k.account.capital == D("1009.516")
    assert_account_identity(k)
