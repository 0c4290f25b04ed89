"""sampan: a private trading venue on Apache Kafka.

Member firms trade Hong Kong equities with each other on an internal order book, or route the
same order to HKEX. Every part speaks to the others through Avro records on Kafka topics; the
topic catalog in `sampan.topics` is the map of who writes and reads what.
"""

__version__ = "0.1.0"
