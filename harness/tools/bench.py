"""`make bench`: how fast the harness searches, and how fast it finds each known bug.

One run prints, side by side:

1. throughput: explore runs per second per core (runs over the search's own CPU
   seconds) on the whole scenario space, for each target the registry installs and
   each release a benchmarked bug lives in; a search that counts no failure, so
   nothing is shrunk;
2. the ordinary run (choice 0 throughout) against the stock loop on the same scenario
   (harness/tools/floor.py: each server's installed release serving two GETs on one
   keep-alive connection: uvicorn, hypercorn and the reference server), in instructions
   per run (valgrind's callgrind, which make installs) and in CPU time, for each
   protocol; and the stock loop's own runs per CPU second, with no harness at all:
   what the server's code alone allows on this scenario, beside section 1's rate (a
   search run's scenario costs more than these two GETs on average);
3. each known find, over SEEDS seeds: median runs and seconds to its detection, and
   seconds until its report (shrunk and confirmed, found while the search went on),
   shrinking seconds and the shrunk trace's decisions;
4. the fixed releases, searched with the same budget: they must find nothing;
5. the seed's method beside it: a real server on loopback under wrk, handed the app
   that triggers the find (harness/tools/loadtest.py), SEEDS bounded tries: seconds
   to the load test's report, against the harness's seconds to detection and to
   report on the same release (which is not handed the trigger); then one try with
   the app changed by one await;
6. what sharing a run's prefix by forking could buy: the CPU a fork costs (parent and
   child, the child exiting at once) in a process that has searched, against the CPU
   of one run's simulation in that process. Each continuation from a shared state
   needs a fork of its own (a run consumes its process's state), so forking pays only
   where a fork costs less than the shared part of a run, which is less than the
   whole run;
7. where one search's CPU goes on the reference server: running its scenarios against
   drawing them and the search's own work, and each family's share of the runs and of
   the CPU: the families a faster search has to make cheaper.

Every search is cold (the examples store is off, so a failure an earlier search
stored is not retried first) and uses the default profile, whatever HARNESS_PROFILE
says. Runs are comparable across machine loads, seconds are not: the first line names
the machine and its load. Timing lives here, never in tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from packaging.version import Version

from harness.http.families import FAMILIES
from harness.targets.registry import entries, target_specs
from harness.targets.runner import run
from harness.tools import floor, loadtest

SEEDS = 10
FIXED_SEEDS = 3
BUDGET = 90.0
THROUGHPUT_SECONDS = 10.0
FAMILY_RUNS = 1500


@dataclass(frozen=True)
class Find:
    name: str
    server: str  # a --server spec
    http: str
    kind: str
    signature_contains: str
    fixed: str | None = None  # the release that fixed it: searched with the same budget


def finds() -> list[Find]:
    """Every known bug the registry asks to benchmark, once per protocol it names."""
    out = []
    for name, entry in entries().items():
        for bug in entry.known_bugs:
            if not bug.bench:
                continue
            release, *protocols = bug.bench
            spec = f"{name}=={release}" if release else name
            fixed = f"{name}=={bug.fixed}" if bug.fixed else None
            label = bug.name.split(":")[0] if not bug.name.startswith("new") else bug.name[:36]
            out += [Find(label, spec, http, bug.kind, bug.signature_contains,
                         fixed) for http in protocols]
    return out


def throughput_targets() -> list[tuple[str, str]]:
    """Each registered server's installed release in every protocol, and every release
    a benchmarked bug lives in."""
    out: list[tuple[str, str]] = []
    for name, entry in entries().items():
        releases = sorted({b.bench[0] for b in entry.known_bugs if b.bench and b.bench[0]},
                          key=Version)
        if entry.installed_version() is not None:
            out += [(name, http) for http in entry.protocols]
        out += [(f"{name}=={r}", entry.protocols[0]) for r in releases]
    return out


def floor_targets() -> list[tuple[str, str]]:
    """Each server floor.py has a stock side for, with each of its protocols."""
    return [(server, http) for server in floor.stock_servers()
            for http in entries()[server].protocols]


def measure(find: Find, seed: int, server: str | None = None) -> dict[str, float] | None:
    spec = target_specs(server or find.server, find.http)[0]
    request = {"op": "explore", "families": list(FAMILIES), "budget": BUDGET, "seed": seed,
               "max_found": 1, "examples": None, "profile": "default",
               "accept": {"kind": find.kind, "signature_contains": find.signature_contains}}
    result = run(spec, request, lambda e, i: None)
    if not result["findings"]:
        return None
    f = result["findings"][0]
    return {"runs": f["runs_to_find"], "seconds": f["seconds_to_find"],
            "report": f["seconds_to_report"], "shrink": f["seconds_to_shrink"],
            "decisions": f["decisions"], "deviations": f["deviations"]}


def throughput(server: str, http: str) -> dict[str, Any]:
    """Runs per CPU second of one search that counts no failure (nothing is shrunk)."""
    spec = target_specs(server, http)[0]
    result = run(spec, {"op": "explore", "families": list(FAMILIES),
                        "budget": THROUGHPUT_SECONDS, "seed": 0, "accept": {"kind": "none"},
                        "examples": None, "profile": "default"}, lambda e, i: None)
    cpu = float(result.get("cpu_seconds") or result["seconds"])
    return {"runs": result["runs"], "per_core": result["runs"] / cpu if cpu else 0.0,
            "per_second": result["runs"] / result["seconds"] if result["seconds"] else 0.0}


def reference_search(runs: int, seed: int,
                     each: Callable[[Any, Callable[[], Any]], Any],
                     ) -> tuple[Callable[[Any, Any], Any], float]:
    """One search of `runs` runs on the reference server, in this process, that counts
    no failure: each run is `each(scenario, run)`, where `run()` executes it. Returns the
    search's execute(scenario, source), for runs after it, and the search's CPU seconds
    (its target and strategy, built before, not counted)."""
    from harness.http.strategies import scenarios as space
    from harness.search.engine import search
    from harness.search.explore import execute_on
    from harness.targets.runner import make_target

    target = make_target(target_specs("reference", "default")[0])
    execute = execute_on(target)
    strategy = space(target, FAMILIES)
    start = time.process_time()
    search(lambda draw: draw(strategy),
           lambda scenario, source: each(scenario, lambda: execute(scenario, source)),
           budget_seconds=0, max_runs=runs, seed=seed, accept=lambda f: False)
    return execute, time.process_time() - start


def fork_cost(runs: int = 300, forks: int = 50) -> dict[str, float]:
    """CPU seconds of one fork (parent and child) and of one run's simulation (its
    scenario drawn beforehand), on the reference server, in this process after a search
    of `runs` runs (whose scenarios it then runs again, timed)."""
    from harness.decisions import RandomSource

    drawn: list[Any] = []

    def keep(scenario: Any, run: Callable[[], Any]) -> Any:
        drawn.append(scenario)
        return run()

    execute, _ = reference_search(runs, 0, keep)
    start = time.process_time()
    for i, scenario in enumerate(drawn):
        execute(scenario, RandomSource(i))
    per_run = (time.process_time() - start) / len(drawn)

    def cpu() -> float:
        own, children = (resource.getrusage(who) for who in
                         (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    before = cpu()
    for _ in range(forks):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"fork": (cpu() - before) / forks, "run": per_run, "rss_mb": rss}


def family_costs(runs: int = FAMILY_RUNS, seed: int = 1) -> dict[str, Any]:
    """CPU seconds of one search of `runs` runs on the reference server that counts no
    failure, and of each run it executed, by scenario family."""
    spent: dict[str, list[float]] = {family: [] for family in FAMILIES}

    def timed(scenario: Any, run: Callable[[], Any]) -> Any:
        start = time.process_time()
        try:
            return run()
        finally:
            spent[scenario.family].append(time.process_time() - start)

    _, total = reference_search(runs, seed, timed)
    return {"total": total, "families": spent, "seed": seed}


def print_family_costs(costs: dict[str, Any]) -> None:
    runs = {family: len(times) for family, times in costs["families"].items()}
    cpu = {family: sum(times) for family, times in costs["families"].items()}
    executed, total = sum(cpu.values()), costs["total"]
    print(f"\n7. where one search's CPU goes (the reference server, {sum(runs.values())} runs "
          f"of seed {costs['seed']}, nothing shrunk): running the scenarios "
          f"{executed / total:.0%}, drawing them and the search's own work "
          f"{1 - executed / total:.0%}")
    print(f"  {'family':12} {'runs':>5} {'of runs':>8} {'of CPU':>7} {'ms a run':>9}")
    for family in sorted(cpu, key=cpu.__getitem__, reverse=True):
        if runs[family]:
            print(f"  {family:12} {runs[family]:>5} {runs[family] / sum(runs.values()):>8.0%} "
                  f"{cpu[family] / executed:>7.0%} {cpu[family] / runs[family] * 1e3:>9.2f}",
                  flush=True)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows) if rows else float("nan")


def _or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    # No options: --help says what the run does (and how long) before it starts.
    argparse.ArgumentParser(
        prog="python -m harness.tools.bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Section 3 alone searches each find over {SEEDS} seeds of up to {BUDGET:g} s: "
        "expect a long run. `make bench` installs what it needs (valgrind, wrk) first.",
    ).parse_args(argv)
    print(f"machine: {machine()}; at the start: {load()}", flush=True)
    print(f"\n1. throughput: explore runs per second per core, whole scenario space "
          f"({THROUGHPUT_SECONDS:g} s of search, nothing shrunk)")
    for server, http in throughput_targets():
        t = throughput(server, http)
        print(f"  {server:20} {http:10} {t['per_core']:7.0f} runs/s per core "
              f"({t['runs']} runs, {t['per_second']:.0f} runs/s of wall time)", flush=True)
    print("\n2. the ordinary run against the stock loop (two GETs on one keep-alive "
          "connection, each server's installed release on both sides)")
    for server, http in floor_targets():
        f = floor.compare(server, http, instructions=True)
        label = f"{server} {entries()[server].installed_version()}"
        print(f"  {label:18} {http:10} instructions per run: stock "
              f"{f['stock_instructions'] / 1e6:.2f} M, ordinary "
              f"{f['ordinary_instructions'] / 1e6:.2f} M, {f['instruction_ratio']:.2f}x; "
              f"CPU: {f['stock_us']:.0f} us against {f['ordinary_us']:.0f} us, "
              f"{f['ratio']:.2f}x; the stock loop alone: {1e6 / f['stock_us']:.0f} runs/s "
              "per core", flush=True)
    print(f"\n3. finds: median over {SEEDS} seeds (budget {BUDGET:g} s per seed); a report "
          "is shrunk while the search goes on")
    print(f"  {'find':36} {'target':24} {'found':>5} {'runs':>6} {'s to find':>9} "
          f"{'s to report':>11} {'s shrink':>8} {'decisions':>9} {'deviations':>10}")
    found: dict[tuple[str, str], list[dict[str, float]]] = {}
    for find in finds():
        ok = [r for r in (measure(find, seed) for seed in range(SEEDS)) if r is not None]
        found[find.name, find.http] = ok
        target = f"{find.server} {find.http}"
        print(f"  {find.name:36} {target:24} {len(ok):>2}/{SEEDS} {median(ok, 'runs'):>6.0f} "
              f"{median(ok, 'seconds'):>9.2f} {median(ok, 'report'):>11.2f} "
              f"{median(ok, 'shrink'):>8.2f} {median(ok, 'decisions'):>9.0f} "
              f"{median(ok, 'deviations'):>10.0f}", flush=True)
    print(f"\n4. the fixed releases, same budget ({BUDGET:g} s), {FIXED_SEEDS} seeds: "
          "searches that found the same failure")
    for find in finds():
        if find.fixed:
            hits = sum(measure(find, seed, find.fixed) is not None for seed in range(FIXED_SEEDS))
            print(f"  {find.name:36} {find.fixed} {find.http:10} {hits}/{FIXED_SEEDS}",
                  flush=True)
    print(f"\n5. the load test (wrk, {loadtest.CONNECTIONS} keep-alive connections, "
          f"{loadtest.WINDOW} s windows, {loadtest.TIMEOUT} s timeout) handed the trigger, "
          f"{SEEDS} tries of at most {loadtest.BOUND:g} s, against the harness (section 3)")
    print(f"  {'find':14} {'target':22} {'load test: hangs':>16} {'s to report':>11} "
          f"{'harness: s to find':>18} {'s to report':>11} {'one await fewer':>16}")
    for name, load_spec in loadtest.loads().items():
        tried = loadtest.compare(name, repeats=SEEDS)
        changed = loadtest.compare(name, repeats=1, app=f"{name} one await fewer")
        ours = found.get((name, load_spec.http), [])
        variant = "hang" if changed["detected"] else f"none in {changed['bound']:g}s"
        print(f"  {name:14} {tried['target']:22} {tried['detected']:>13}/{SEEDS} "
              f"{_or_dash(tried['median']):>11} {median(ours, 'seconds'):>18.2f} "
              f"{median(ours, 'report'):>11.2f} "
              f"{variant:>16}",
              flush=True)
    cost = fork_cost()
    print(f"\n6. sharing a prefix by fork: a fork costs {cost['fork'] * 1e3:.2f} ms of CPU "
          f"(parent and child; a process of {cost['rss_mb']:.0f} MB), a run's simulation "
          f"{cost['run'] * 1e3:.2f} ms: "
          + ("a fork costs more than a whole run, so sharing any prefix loses"
             if cost["fork"] >= cost["run"] else
             f"sharing pays for prefixes longer than {cost['fork'] / cost['run']:.0%} of a "
             "run"), flush=True)
    print_family_costs(family_costs())
    print(f"\nat the end: {load()}; {time.strftime('%Y-%m-%d %H:%M')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
