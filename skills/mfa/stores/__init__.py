"""Stores: the skill's shared state on Redis, for replicas behind a load balancer.

``redis_state`` gives the Redis form of each store the skill decides with (the sandbox's
pending codes, the limits' counters, the replay records, the breaker's state). The
in-process forms live beside what they serve; ``agent/state.py`` picks one set or the
other at start-up.
"""
