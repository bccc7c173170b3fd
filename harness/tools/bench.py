"""`make bench`: how fast the harness finds each known bug, and how fast it runs.

For each find, over 10 seeds: the median runs and seconds to the first
failure, seconds to shrink, and decisions in the shrunk trace. Then simulated
runs per second on each target (a search that counts no failure, so nothing
is shrunk). Every search is cold (the examples store is off, so a failure an
earlier search stored is not retried first) and uses the default profile, whatever
HARNESS_PROFILE says. Timing lives here, never in tests.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass

from packaging.version import Version

from harness.http.strategies import FAMILIES
from harness.targets.registry import entries, target_specs
from harness.targets.runner import run

SEEDS = 10
FIXED_SEEDS = 3
BUDGET = 90.0


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
            "shrink": f["seconds_to_shrink"], "decisions": f["decisions"],
            "deviations": f["deviations"]}


def main() -> int:
    print(f"finds: median over {SEEDS} seeds (budget {BUDGET:g}s per seed)")
    print(f"{'find':38} {'target':24} {'found':>5} {'runs':>7} {'s to find':>9} "
          f"{'s shrink':>8} {'decisions':>9} {'deviations':>10}")
    for find in finds():
        results = [measure(find, seed) for seed in range(SEEDS)]
        ok = [r for r in results if r is not None]

        def med(key: str, ok: list[dict[str, float]] = ok) -> float:
            return statistics.median(r[key] for r in ok) if ok else float("nan")

        target = f"{find.server} {find.http}"
        print(f"{find.name:38} {target:24} {len(ok):>2}/{SEEDS} {med('runs'):>7.0f} "
              f"{med('seconds'):>9.2f} {med('shrink'):>8.2f} {med('decisions'):>9.0f} "
              f"{med('deviations'):>10.0f}", flush=True)
    print(f"\nthe fixed releases, same budget ({BUDGET:g}s), {FIXED_SEEDS} seeds: "
          "searches that found the same failure")
    for find in finds():
        if find.fixed:
            hits = sum(measure(find, seed, find.fixed) is not None for seed in range(FIXED_SEEDS))
            print(f"  {find.name:36} {find.fixed} {find.http:10} {hits}/{FIXED_SEEDS}",
                  flush=True)
    print("\nthroughput: simulated runs per second (10 s of search, nothing shrunk)")
    for server, http in throughput_targets():
        spec = target_specs(server, http)[0]
        start = time.monotonic()
        result = run(spec, {"op": "explore", "families": list(FAMILIES), "budget": 10.0,
                            "seed": 0, "accept": {"kind": "none"}, "examples": None,
                            "profile": "default"},
                     lambda e, i: None)
        rate = result["runs"] / result["seconds"]
        print(f"  {server:20} {http:10} {rate:7.0f} runs/s "
              f"({result['runs']} runs; {time.monotonic() - start:.1f}s with start-up)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
