"""Benchmarks for the MFA digital employee: ``python -m bench [--quick] [--json PATH]``.

Everything runs on loopback. The agent, the bare SDK agent and the fake SignalWire
each run in their own process; the measuring client is this process. Figures are
medians over repeated runs on whatever machine runs them: read them as relative
numbers (agent vs bare SDK vs direct upstream), not as absolute capacity.
No timing is asserted anywhere; targets are printed as met or missed.
"""
