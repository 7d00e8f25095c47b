"""Measurements 1 and 2: what one request costs, sequentially, against its floor.

Per sample, three things are timed back to back with one pooled client:

* the agent: a new call's SWML is fetched (not timed), then ``send_mfa`` and
  ``verify_mfa`` (the right code) are each timed as one HTTP request;
* the floor on the SDK side: a no-op secure tool on a bare SDK agent, called through its
  SWML ``web_hook_url`` with the call's token (SWML fetch not timed);
* the floor on the upstream side: the same two fake SignalWire requests made directly.

The fake answers at once. Ratio = agent time / (no-op time + direct upstream time).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx

from agent.ops.platform import PlatformCall
from bench.fake_server import BENCH_CODE
from bench.servers import AUTH, loopback_client
from bench.stats import summary_ms
from testkit.agent_env import FROM_NUMBER
from testkit.fake_signalwire import API_TOKEN, PROJECT_ID

MFA_PATH = "/api/relay/rest/mfa"


class DirectUpstream:
    """The fake called the way the provider calls it: same bodies, auth and parsing."""

    def __init__(self, http: httpx.AsyncClient, fake_url: str) -> None:
        self.http = http
        self.base = fake_url + MFA_PATH
        self.auth = httpx.BasicAuth(PROJECT_ID, API_TOKEN)
        self.headers = {"User-Agent": "mfa-bench", "Accept": "application/json"}

    async def send(self, to: str) -> str:
        body = {
            "to": to,
            "from": FROM_NUMBER,
            "message": "Your verification code is:",
            "token_length": 6,
            "valid_for": 600,
            "max_attempts": 3,
            "allow_alphas": False,
        }
        response = await self.http.post(
            self.base + "/sms", json=body, auth=self.auth, headers=self.headers
        )
        response.raise_for_status()
        return str(response.json()["id"])

    async def verify(self, request_id: str, code: str) -> bool:
        response = await self.http.post(
            f"{self.base}/{request_id}/verify",
            json={"token": code},
            auth=self.auth,
            headers=self.headers,
        )
        response.raise_for_status()
        return bool(response.json()["success"])


def caller_number(i: int) -> str:
    return f"+1555{i % 10_000_000:07d}"


_callers = itertools.count(1_000_000)


def fresh_caller() -> str:
    """A caller number not used before in this run, so per-number counters stay at 1."""
    return caller_number(next(_callers))


async def one_run(
    agent_url: str, bare_url: str, fake_url: str, *, samples: int, warmup: int
) -> dict[str, Any]:
    """One repeat of measurement 1 then measurement 2; returns each figure's median/p99."""
    times: dict[str, list[int]] = {
        k: [] for k in ("agent_send", "agent_verify", "noop", "direct_send", "direct_verify")
    }
    async with loopback_client(timeout=15) as http:
        direct = DirectUpstream(http, fake_url)
        for i in range(warmup + samples):
            keep = i >= warmup
            caller = fresh_caller()

            t = time.perf_counter_ns()
            request_id = await direct.send(caller)
            t_send = time.perf_counter_ns() - t
            t = time.perf_counter_ns()
            verified = await direct.verify(request_id, BENCH_CODE)
            t_verify = time.perf_counter_ns() - t
            if not verified:
                raise RuntimeError("direct verify failed")

            bare = PlatformCall(http=http, base_url=bare_url, auth=AUTH, caller=caller)
            await bare.start()
            t = time.perf_counter_ns()
            reply = await bare.invoke("noop")
            t_noop = time.perf_counter_ns() - t
            if reply.status_code != 200:
                raise RuntimeError(f"noop answered {reply.status_code}")

            call = PlatformCall(http=http, base_url=agent_url, auth=AUTH, caller=caller)
            await call.start()
            t = time.perf_counter_ns()
            reply = await call.invoke("send_mfa")
            t_agent_send = time.perf_counter_ns() - t
            if reply.status_code != 200 or "mfa_request_id" not in str(reply.actions):
                raise RuntimeError(f"send_mfa failed: {reply.status_code} {reply.response}")
            t = time.perf_counter_ns()
            reply = await call.invoke("verify_mfa", token=BENCH_CODE)
            t_agent_verify = time.perf_counter_ns() - t
            if call.global_data.get("mfa_verified") is not True:
                raise RuntimeError(f"verify_mfa failed: {reply.status_code} {reply.response}")

            if keep:
                times["direct_send"].append(t_send)
                times["direct_verify"].append(t_verify)
                times["noop"].append(t_noop)
                times["agent_send"].append(t_agent_send)
                times["agent_verify"].append(t_agent_verify)

        swml = await _swml_run(http, agent_url, bare_url, samples=samples, warmup=warmup)

    result: dict[str, Any] = {name: summary_ms(values) for name, values in times.items()}
    result.update(swml)
    return result


async def _swml_run(
    http: httpx.AsyncClient, agent_url: str, bare_url: str, *, samples: int, warmup: int
) -> dict[str, Any]:
    """Measurement 2: POST / for a new call, the agent and the bare agent alternately."""
    times: dict[str, list[int]] = {"swml_agent": [], "swml_bare": []}
    sizes: dict[str, int] = {}
    for i in range(warmup + samples):
        for name, url in (("swml_agent", agent_url), ("swml_bare", bare_url)):
            body = {
                "call": {
                    "call_id": f"bench-swml-{name}-{i}",
                    "from": caller_number(i),
                    "to": FROM_NUMBER,
                },
                "vars": {},
            }
            t = time.perf_counter_ns()
            response = await http.post(url + "/", json=body, auth=AUTH)
            response.json()
            elapsed = time.perf_counter_ns() - t
            response.raise_for_status()
            sizes[name] = len(response.content)
            if i >= warmup:
                times[name].append(elapsed)
    out: dict[str, Any] = {name: summary_ms(values) for name, values in times.items()}
    out["swml_bytes"] = sizes
    return out
