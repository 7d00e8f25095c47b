"""Ledgers: what makes each code's outcome final and each request's answer repeatable.

``binding`` seals meta_data to its call (a claim copied from another call, or altered, does
not open); ``code_ledger`` (and ``redis_ledger``, its Redis form) knows each call's newest
code and whether it is finished, so one code never has two final outcomes; ``replay``
records what a request got, so the platform's retry of it gets the same answer.
"""
