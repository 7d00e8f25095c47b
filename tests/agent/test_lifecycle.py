"""One lifespan runs every part's start and stop hooks, stops in reverse order."""

from __future__ import annotations

from agent.app import build_agent
from testkit.servers import ServerThread


def test_stops_run_in_reverse_and_all_run_even_when_one_fails(make_settings):
    agent = build_agent(make_settings())
    seen: list[str] = []

    def recorder(name: str, fail: bool = False):
        async def hook() -> None:
            seen.append(name)
            if fail:
                raise RuntimeError(name)

        return hook

    agent.on_lifecycle(start=recorder("start a"), stop=recorder("stop a"))
    agent.on_lifecycle(start=recorder("start b"), stop=recorder("stop b", fail=True))
    agent.on_lifecycle(stop=recorder("stop c"))
    with ServerThread(agent.get_app()):
        assert seen == ["start a", "start b"]
    assert seen[2:] == ["stop c", "stop b", "stop a"]
    assert agent.http is not None and agent.http.is_closed  # the core stops ran too
