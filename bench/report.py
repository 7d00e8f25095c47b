"""Turn the raw results into summary figures, a printed table and a markdown table."""

from __future__ import annotations

from typing import Any

from bench.stats import median, median_of_runs

RATIO_TARGET = 1.3
FRACTION_TARGET = 0.8
P99_TARGET_MS = 500.0
TARGET_LEVEL = 100
IDLE_RSS_TARGET_MB = 150.0
START_TARGET_S = 2.0

OVERHEAD_FIGURES = {
    "agent_send": "send_mfa through the agent",
    "agent_verify": "verify_mfa through the agent",
    "noop": "no-op tool, bare SDK agent",
    "direct_send": "direct upstream send (fake, pooled client)",
    "direct_verify": "direct upstream verify (fake, pooled client)",
}


def summarize_overhead(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in (*OVERHEAD_FIGURES, "swml_agent", "swml_bare"):
        per_run = [run[key] for run in runs]
        out[key] = {
            "median_ms": median_of_runs(per_run, "median_ms"),
            "p99_ms": median_of_runs(per_run, "p99_ms"),
            "samples_per_run": per_run[0]["n"],
        }
    for tool in ("send", "verify"):
        ratios = [
            run[f"agent_{tool}"]["median_ms"]
            / (run["noop"]["median_ms"] + run[f"direct_{tool}"]["median_ms"])
            for run in runs
        ]
        out[f"ratio_{tool}"] = {"median": median(ratios), "runs": ratios}
        out[f"added_{tool}_ms"] = median(
            [
                run[f"agent_{tool}"]["median_ms"]
                - run["noop"]["median_ms"]
                - run[f"direct_{tool}"]["median_ms"]
                for run in runs
            ]
        )
    out["swml_bytes"] = runs[-1]["swml_bytes"]
    return out


def summarize_level(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "calls_per_s",
        "ideal_calls_per_s",
        "fraction_of_ideal",
        "p50_ms",
        "p99_ms",
        "p99_send_ms",
        "p99_verify_ms",
        "wall_s",
    )
    out: dict[str, Any] = {key: median([run[key] for run in runs]) for key in keys}
    out["concurrency"] = runs[0]["concurrency"]
    out["calls_per_run"] = runs[0]["calls"]
    out["repeats"] = len(runs)
    out["failed_calls"] = sum(run["failed_calls"] for run in runs)
    out["timed_out_runs"] = sum(1 for run in runs if run["timed_out"])
    kinds: dict[str, int] = {}
    for run in runs:
        for kind, count in run["failure_kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + count
    out["failure_kinds"] = kinds
    out["cpu_ms_per_call"] = {
        name: median([run["cpu_ms_per_call"][name] for run in runs])
        for name in runs[0]["cpu_ms_per_call"]
    }
    return out


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row per figure: section, figure, value, target, met."""
    table: list[dict[str, str]] = []

    def add(section: str, figure: str, value: str, target: str = "", met: str = "") -> None:
        table.append(
            {"section": section, "figure": figure, "value": value, "target": target, "met": met}
        )

    over = results.get("overhead")
    if over:
        for key, label in OVERHEAD_FIGURES.items():
            fig = over[key]
            add("1 overhead", label, f"{fig['median_ms']:.2f} ms (p99 {fig['p99_ms']:.2f} ms)")
        for tool in ("send", "verify"):
            ratio = over[f"ratio_{tool}"]["median"]
            add(
                "1 overhead",
                f"ratio {tool}_mfa / (no-op + direct {tool}); agent adds "
                f"{over[f'added_{tool}_ms']:.2f} ms",
                f"{ratio:.2f}",
                f"<= {RATIO_TARGET}",
                _yes(ratio <= RATIO_TARGET),
            )
        for key, label in (("swml_agent", "agent"), ("swml_bare", "bare SDK agent, one tool")):
            fig = over[key]
            add(
                "2 SWML",
                f"render for a new call: {label} ({over['swml_bytes'][key]} bytes)",
                f"{fig['median_ms']:.2f} ms (p99 {fig['p99_ms']:.2f} ms)",
            )

    conc = results.get("concurrency")
    if conc:
        latency = conc["latency_s"]
        for level in conc["levels"] + conc.get("replicas", []):
            n = level["concurrency"]
            setup = level.get("setup", "1 agent, in-process state")
            value = (
                f"{level['calls_per_s']:.1f} calls/s of ideal {level['ideal_calls_per_s']:.1f} "
                f"= {level['fraction_of_ideal'] * 100:.0f}%; p99 {level['p99_ms']:.0f} ms "
                f"(p50 {level['p50_ms']:.0f}); failed {level['failed_calls']}"
            )
            if level["failed_calls"]:
                top = max(level["failure_kinds"], key=level["failure_kinds"].get)
                value += f" (mostly {top[:60]!r})"
            if level["timed_out_runs"]:
                value += f"; {level['timed_out_runs']} run(s) hit the time limit"
            target = met = ""
            if n == TARGET_LEVEL and "setup" not in level:
                target = f">= {FRACTION_TARGET:.0%} of ideal, p99 < {P99_TARGET_MS:.0f} ms"
                met = _yes(
                    level["fraction_of_ideal"] >= FRACTION_TARGET
                    and level["p99_ms"] < P99_TARGET_MS
                )
            add(
                "3 concurrency",
                f"{n} concurrent calls, {setup} (upstream pool {level['agent_pool']}, "
                f"{latency * 1000:.0f} ms upstream, {level['calls_per_run']} calls x "
                f"{level['repeats']})",
                value,
                target,
                met,
            )
        for level in conc["levels"] + conc.get("replicas", []):
            cpu = level["cpu_ms_per_call"]
            where = f" ({level['setup']}, agents summed)" if "setup" in level else ""
            add(
                "3 concurrency",
                f"CPU per call{where} at {level['concurrency']} concurrent",
                f"agent {cpu['agent']:.1f} ms, fake {cpu['fake']:.1f} ms, "
                f"load generator {cpu['load_generator']:.1f} ms",
            )

    looked = results.get("lookups")
    if looked:
        level = looked["level"]
        add(
            "5 line types",
            f"lookup cache hit rate: {looked['calls']} calls from {looked['numbers']} phones, "
            f"{looked['concurrency']} concurrent ({level['failed_calls']} failed)",
            f"{looked['hit_rate'] * 100:.0f}% "
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(looked["lookups"].items())),
        )
        cpu = level["cpu_ms_per_call"]
        add(
            "5 line types",
            "CPU per call with the lookup on",
            f"agent {cpu['agent']:.1f} ms, fake {cpu['fake']:.1f} ms",
        )

    foot = results.get("footprint")
    if foot:
        runs = len(foot["start_s_runs"])
        add(
            "4 footprint",
            f"start: Popen to /health 200 (median of {runs})",
            f"{foot['start_s_median']:.2f} s",
            f"< {START_TARGET_S:.0f} s",
            _yes(foot["start_s_median"] < START_TARGET_S),
        )
        add(
            "4 footprint",
            "RSS idle after start",
            f"{foot['idle_rss_mb']:.1f} MB",
            f"< {IDLE_RSS_TARGET_MB:.0f} MB",
            _yes(foot["idle_rss_mb"] < IDLE_RSS_TARGET_MB),
        )
        add(
            "4 footprint",
            f"RSS with {foot['codes_pending_in_db']} sandbox codes pending "
            f"({foot['codes_sent']} of {foot['codes_requested']} sends answered 'sent')",
            f"{foot['loaded_rss_mb']:.1f} MB (db {foot['db_bytes'] / 1e6:.1f} MB; sends ran "
            f"at {foot['send_phase_calls_per_s']:.0f} calls/s incl. SWML)",
        )
    return table


def text_table(table: list[dict[str, str]]) -> str:
    headers = {
        "section": "",
        "figure": "figure",
        "value": "value",
        "target": "target",
        "met": "met",
    }
    cols = list(headers)
    widths = {c: max(len(headers[c]), *(len(r[c]) for r in table)) for c in cols}
    lines = ["  ".join(headers[c].ljust(widths[c]) for c in cols).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in cols))
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols).rstrip() for r in table]
    return "\n".join(lines)


def markdown_table(table: list[dict[str, str]]) -> str:
    lines = ["| | figure | value | target | met |", "|---|---|---|---|---|"]
    for r in table:
        cells = [r[c].replace("|", "\\|") for c in ("section", "figure", "value", "target", "met")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def caveat(meta: dict[str, Any]) -> str:
    load = meta.get("loadavg", {})
    loads = ", ".join(f"{k} {v}" for k, v in load.items())
    return (
        f"CAVEAT: noisy shared machine ({meta['cpu_count']} cores, {meta['date']}; load average "
        f"{loads}). Figures are medians over repeated runs; read them relative to each other "
        "(agent vs bare SDK vs direct upstream), not as capacity figures. Nothing is asserted."
    )
