"""The parts ``agent.app.build_agent`` wires, one module per part.

Each function here builds one part from the settings and returns it; ``build_agent``
decides the order, the subscriptions, the mounts and the hooks. Nothing here imports
``agent.app``.
"""
