"""hkex_sim: the simulated Hong Kong Stock Exchange (HKEX route and market data in design.md).

``market`` is the pure core: the securities market's books on the matcher's ``Engine`` under
``Rules.hkex()``, per-security statistics and seeded synthetic liquidity, stepped on an
injected clock. Around it: the OMD-C publisher (``omd_publisher``), its retransmission and
refresh servers (``rts``), the process shell (``omd_cli``) and the OCG-C order entry.
"""
