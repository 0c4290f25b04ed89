from sampan.market.money import format_cents, format_notional_e3, format_price_e3


def test_prices_keep_three_decimals_exactly() -> None:
    assert format_price_e3(350_200) == "350.200"
    assert format_price_e3(10) == "0.010"
    assert format_price_e3(-1) == "-0.001"
    assert format_price_e3(9_995_000) == "9995.000"


def test_cash_has_cents_and_thousands_separators() -> None:
    assert format_cents(123_456) == "1,234.56"
    assert format_cents(-5) == "-0.05"
    assert format_cents(50_000_000_00) == "50,000,000.00"


def test_notional_has_three_decimals_and_separators() -> None:
    assert format_notional_e3(1_234_567_890) == "1,234,567.890"
    assert format_notional_e3(-1) == "-0.001"
