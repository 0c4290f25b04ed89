"""omd_ingest: the HKEX OMD-C market-data feed handler (market data flow in design.md).

hkex_sim's OMD-C publisher sends binary packets on lines A and B; this package decodes them
(with ``sampan.omd``), arbitrates the lines and recovers gaps (``arbitration``), keeps the
10-level aggregate books (``book``) and, in its shell, publishes md.depth, md.trades and
md.stats. The modules named here are the pure core: no sockets, no Kafka, no clocks.
"""
