"""Surveillance: unusual activity of accounts and books, as alerts on `surveillance.alerts`.

`model` holds the typed inputs, the alert and the thresholds; `spoofing`, `activity` and `market`
are pure rule cores (no Kafka, no clock: time is each input's own `ts_ns`); `detector` maps
records to inputs and runs every rule; `shell` does the Kafka I/O inside the analytics app.
"""
