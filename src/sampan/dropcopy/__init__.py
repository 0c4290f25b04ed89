"""dropcopy: the HKEX drop-copy client and reconciliation (drop copy in design.md's flows).

`client` holds the receive-only FIX session with the gateway's drop copy and writes every
execution report to `hkex.dropcopy` exactly once (`writer`, `records`); `recon` compares those
executions with `fills` (venue HKEX) and `recon_runner` publishes the differences to
`recon.breaks`. `cli` provides `sampan dropcopy` and `sampan recon run | report`.
"""
