"""Limits: how many codes a call, a number, a number range and the agent may send.

``send_limits`` holds the per-call, per-recipient and per-agent rules and reserves a send
against them (fail closed without their store); ``pumping`` adds the SMS-pumping rules
(velocity per range and country, the conversion floor) with the operator's allow and
block lists from ``pumping_lists``.
"""
