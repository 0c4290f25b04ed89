"""market: the HKEX and venue vocabulary every process shares. Pure: no I/O, no clock.

`rules`: spread tables, price bounds, the order size in lots; `listings`: the venue's
instruments.
"""
