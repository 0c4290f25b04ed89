"""market: the HKEX and venue vocabulary every process shares. Pure: no I/O, no clock.

`rules`: spread tables, price bounds, the order size in lots; `listings`: the venue's
instruments; `calendar`: the Hong Kong day of a timestamp; `sessions`: the phases of a trading
day and its timetable; `venue_calendar`: holidays and half days from a calendar file;
`schedule`: the phase changes a venue makes over days; `clock`: the one venue clock (real or
accelerated; the only module here that reads time, and only when asked); `side`: the one
`Side` enum; `parties`: venues and the exchange's side of a trade.
"""
