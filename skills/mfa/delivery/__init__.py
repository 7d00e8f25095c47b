"""Delivery: how a code reaches a phone and how requests leave the process.

``providers`` holds the code providers behind one protocol (SignalWire's MFA API, the
local sandbox) and the circuit breaker around them; ``http_pool`` the process's one
shared ``httpx.AsyncClient`` and its bounded reads; ``signing`` the Standard Webhooks
signature of every request the agent makes to the business's own server.
"""
