"""``python -m bench.bare_agent PORT``: the SDK's floor, one no-op secure tool.

Served by the SDK's own ``serve()`` (uvicorn with its defaults), the same way
``python -m agent`` serves the product, so the two differ only in what the product adds.
"""

from __future__ import annotations

import sys
from typing import Any

from signalwire import AgentBase
from signalwire.core.function_result import FunctionResult

from bench.servers import AUTH, SDK_CONFIG_FILE


def build() -> AgentBase:
    agent = AgentBase(name="bare", route="/", basic_auth=AUTH, config_file=str(SDK_CONFIG_FILE))

    async def noop(args: dict[str, Any], raw_data: dict[str, Any]) -> FunctionResult:
        return FunctionResult("ok")

    agent.define_tool(
        name="noop", description="Does nothing.", parameters={}, handler=noop, secure=True
    )
    return agent


def main() -> None:
    build().serve(host="127.0.0.1", port=int(sys.argv[1]))


if __name__ == "__main__":
    main()
