"""tools: what runs beside the venue rather than in it: the demo and its venue supervisor,
`sampan seed`, the load generator, the benchmarks and the audit. No process package imports
these.
"""
