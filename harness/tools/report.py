"""Reports: one folder per distinct failure, worth attaching to a bug report.

    reports/<server>-<version>-<http>/<kind>-<id>/
        trace.json      the shrunk, replayable trace
        report.md       a one-line diagnosis; what the client and the app did, what
                        went wrong, the deviations from an ordinary run, how to replay;
                        then the details: await stacks, a Mermaid timeline, the
                        scenario as JSON, the environment, the reference server's run
        test_repro.py   a standalone pytest file that fails while the bug is present
                        (it carries the trace, so it runs without the folder)

Commands in a report name its files relative to the root of the project it sits
in (the nearest folder upward holding .git or pyproject.toml), so they work from
that root on any checkout; outside a project, by absolute path (reference_run.py).

A folder is written in a temporary sibling and renamed into place, so an
interrupted run never leaves half a report.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.errors import name_the_file
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.oracles import KINDS
from harness.search.trace import UMASK, Trace
from harness.sim.interrupts import interrupts_held
from harness.tools.diagnosis import (
    app_account,
    client_account,
    diagnosis,
    focus_of,
    plural,
    shutdown_account,
    target_name,
)
from harness.tools.environment import harness_line, target_lines
from harness.tools.reference_run import ReferenceRun, Where

MAX_TIMELINE = 120
TIMELINE_HEAD = 30  # of a timeline longer than MAX_TIMELINE: its first events kept


def report_id(kind: str, signature: str) -> str:
    return hashlib.sha1(f"{kind}\n{signature}".encode()).hexdigest()[:8]


def report_dir(root: Path, label: str, kind: str, signature: str) -> Path:
    return root / label / f"{kind}-{report_id(kind, signature)}"


def describe_decision(what: str, n: int, choice: int, index: int | None = None,
                      log: list[str] | tuple[str, ...] = ()) -> str:
    """Decision `index` of a trace in words. For an arrival, the replay log's entry for
    that decision (harness/sim/poller.py tags it) says whether the bytes were held back
    or how many arrived: option k is k bytes, or k - 1 where holding back was option 1."""
    if what.startswith("arrive "):
        stream = what.split(" ", 1)[1]
        tag = f" (decision {index})"
        for line in log:
            _, kind, detail = [*line.split(" ", 2), "", ""][:3]
            if not detail.endswith(tag) or kind not in ("arrive", "hold"):
                continue
            if kind == "hold":
                return f"bytes in flight on {stream} were held back: something else ran first"
            moved = detail.split(" ")[1].rstrip("B")
            return f"only the first {moved} byte(s) in flight on {stream} arrived"
        return f"only some of the bytes in flight on {stream} arrived, or none yet " \
               f"(option {choice} of {n})"
    if what == "io order":
        return f"the I/O event that would have run first ran after event {choice} in its poll"
    return f"{what}: option {choice} of {n}"


def mermaid_text(text: str) -> str:
    """One Mermaid label that renders as `text`, checked in a browser (tests/test_render.py).

    Mermaid reads "#" as the start of an entity code, ";" as the end of a statement, "<br>"
    as a line break (and other tags as markup), and "%%{...}%%" as a directive wherever it
    stands: each of "#;<>%" becomes an entity code, so "received #2 ..." stays whole. A
    line break would end the statement: control characters are written as Python escapes."""
    text = re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], text)
    return re.sub(r"[#;<>%]", lambda m: f"#{ord(m.group())};", text)


def _conn(detail: str) -> str:
    """The connection a log detail names ("server[c2] ..." or "client[c2] ..."): "c2"."""
    found = re.match(r"\w+\[(c\d+)\]", detail)
    return found.group(1) if found else "?"


def _mermaid(log: list[str]) -> list[str]:
    lines = ["sequenceDiagram", "    participant C as Client", "    participant S as Server",
             "    participant A as App"]
    polls: list[Any] = []  # [first time, count] of the timer firings the last line shows
    for entry in log:
        parts = entry.split(" ", 2)
        if len(parts) < 3:
            continue
        t, kind, detail = parts
        at = f"t={float(t):g}"
        last = detail.split()[-1] if detail.split() else ""
        if kind == "client-send":
            lines.append(f"    C->>S: {_conn(detail)} {last} ({at})")
        elif kind in ("client-close", "client-reset", "client-shutdown"):
            lines.append(f"    C->>S: {_conn(detail)} {kind.split('-')[1]} ({at})")
        elif kind == "recv":
            lines.append(f"    Note over S: reads {last} on {_conn(detail)}")
        elif kind == "send":
            lines.append(f"    S->>C: {_conn(detail)} {last}")
        elif kind == "client-recv":
            lines.append(f"    Note over C: receives {last} on {_conn(detail)}")
        elif kind == "hold" or (kind == "arrive" and "(decision " in detail):
            # a deviation: bytes held back in flight, or only some of them arrived
            stream, size, *tag = detail.split(" ")
            what = "held back" if kind == "hold" else f"only {size} arrived"
            lines.append(f"    Note over C,S: {mermaid_text(stream)} {what} "
                         f"{mermaid_text(' '.join(tag))} ({at})")
        elif kind in ("close", "abort", "write_eof"):
            lines.append(f"    S->>C: {_conn(detail)} {kind} ({at})")
        elif kind in ("pause_writing", "resume_writing"):
            lines.append(f"    Note over S: {kind} {_conn(detail)} ({at})")
        elif kind in ("client-overlap", "client-rude"):
            lines.append(f"    Note over C: {mermaid_text(detail.split(' ', 1)[1])}")
        elif kind == "loop-error":
            lines.append(f"    Note over S: error logged: {mermaid_text(detail)} ({at})")
        elif kind == "timer":  # whose, the server's or the app's, the log does not say
            note = f"    Note over S,A: timer {mermaid_text(detail)}"
            if polls and lines[-1].startswith(note + " ("):  # a server polling: one note
                polls[1] += 1
                lines[-1] = f"{note} ({polls[0]} to {at}, {polls[1]} times)"
            else:
                polls[:] = [at, 1]
                lines.append(f"{note} ({at})")
        elif kind in ("signal", "shutdown", "exit"):
            lines.append(f"    Note over S: {kind} {mermaid_text(detail)} ({at})")
        elif kind in ("exit-close", "refuse"):
            lines.append(f"    S->>C: {'closed at exit' if kind == 'exit-close' else 'RST'} "
                         f"({at})")
        elif kind == "asgi":
            req, rest = detail.split(" ", 1)
            word = rest.split(" ", 1)[0]
            text = f"{mermaid_text(req)} {mermaid_text(rest)}"
            if word in ("returned", "raised", "watch"):  # the app's own doing: no message
                lines.append(f"    Note over A: {text}")
            elif word == "call":
                lines.append(f"    S->>A: call {mermaid_text(req)}")
            else:
                arrow = "A->>S" if word in ("receive", "send") else "S-->>A"
                lines.append(f"    {arrow}: {text}")
        elif kind == "end":
            lines.append(f"    Note over C,A: {mermaid_text(detail)}")
    if len(lines) > MAX_TIMELINE:  # its start (what was sent) and its end (what went wrong)
        head = TIMELINE_HEAD + 4
        tail = MAX_TIMELINE - head - 1
        cut = len(lines) - head - tail
        lines = [*lines[:head], f"    Note over C,A: ... {cut} events omitted ...",
                 *lines[-tail:]]
    return lines


def _waiting_section(waiting: list[dict[str, Any]]) -> list[str]:
    if not waiting:
        return []
    out = ["### Blocked await stacks", "",
           "Each receive() still waiting when the run went quiescent, outermost frame first:",
           ""]
    for w in waiting:
        out += [f"{w['request']} receive() #{w['call']}:", "```",
                *w["stack"], "```", ""]
    return out


# -- the scenario as JSON ------------------------------------------------------------
def _changed(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The fields of `values` not at their defaults, in the defaults' (field) order."""
    order = [*defaults, *(k for k in values if k not in defaults)]
    return {k: values[k] for k in order
            if k in values and (k not in defaults or defaults[k] != values[k])}


def scenario_json(scenario: dict[str, Any]) -> dict[str, Any]:
    """The scenario with every field at its default left out (trace.json has them all);
    a request keeps its method, a connection its requests."""
    conn_defaults, req_defaults = ConnSpec().to_json(), asdict(RequestSpec())
    app_defaults = AppBehaviour().to_json()
    conns = [{"requests": [{"method": r.get("method", "GET"), **_changed(r, req_defaults)}
                           for r in c.get("requests", [])],
              **_changed({k: v for k, v in c.items() if k != "requests"}, conn_defaults)}
             for c in scenario.get("connections", [])]
    return {"family": scenario.get("family"), "connections": conns,
            "behaviours": {f"/c{cid}/r{i}": _changed(b, app_defaults)
                           for cid, i, b in scenario.get("behaviours", [])},
            "server": scenario.get("server", {})}


def json_lines(value: dict[str, Any]) -> list[str]:
    """A JSON object one member a line, and a member that holds objects one of them a
    line: short enough to read, and still JSON."""
    def nested(v: Any) -> bool:
        items = v.values() if isinstance(v, dict) else v if isinstance(v, list) else []
        return any(isinstance(x, dict | list) for x in items)

    out = ["{"]
    for n, (key, v) in enumerate(value.items()):
        comma = "," if n < len(value) - 1 else ""
        if not nested(v):
            out.append(f" {json.dumps(key)}: {json.dumps(v)}{comma}")
            continue
        items = [f"{json.dumps(k)}: {json.dumps(x)}" for k, x in v.items()] \
            if isinstance(v, dict) else [json.dumps(x) for x in v]
        opening, closing = ("{", "}") if isinstance(v, dict) else ("[", "]")
        out += [f" {json.dumps(key)}: {opening}",
                *(f"  {item}{',' if i < len(items) - 1 else ''}" for i, item in enumerate(items)),
                f" {closing}{comma}"]
    return [*out, "}"]


# -- report.md -----------------------------------------------------------------------
NOT_SHRUNK = ("**Not shrunk:** the search stopped while this failure was being shrunk, so "
              "this is the run that detected it, as it was: it replays, but it may hold "
              "deviations and requests the failure does not need. Explore again to shrink "
              "it.")


def render_markdown(trace: Trace, finding: dict[str, Any], replay_log: list[str],
                    env: dict[str, Any] | None, where: Where, reference: ReferenceRun,
                    waiting: list[dict[str, Any]] | None = None) -> str:
    """The diagnosis line first, then the shortest useful account, then the details."""
    target = trace.target or {}
    kind = finding["kind"]
    scenario = trace.scenario
    focus = focus_of(finding, replay_log)
    deviations = [(i, d) for i, d in enumerate(trace.decisions) if d.choice]
    out = [
        f"# {kind} in {target_name(target)}",
        "",
        diagnosis(target, finding, scenario, replay_log),
        "",
        *([] if finding.get("shrunk", True) else [NOT_SHRUNK, ""]),
        f"- **The client** sent {client_account(scenario)}.",
        "- **The app**, per request:",
        *(f"  - {line}" for line in app_account(scenario, replay_log)),
        *([f"- **The shutdown:** {said}."] if (said := shutdown_account(scenario, replay_log))
          else []),
        f"- **What went wrong:** {_what_went_wrong(finding['message'])}"
        + (f"; it waits at `{_blocked_at(finding['signature'])}`"
           if "blocked at " in finding["signature"] else "") + ".",
    ]
    if finding.get("also"):
        out.append("- **The same run also fails** (`harness replay` shows each): "
                   + "; ".join(f"`{also}`" for also in finding["also"]) + ".")
    if deviations:
        out.append(f"- **Deviations from an ordinary run** ({len(deviations)} of "
                   f"{len(trace.decisions)} scheduling decisions, numbered from 0 as in "
                   "trace.json):")
        out += [f"  - decision {i}: {describe_decision(d.what, d.n, d.choice, i, replay_log)}"
                for i, d in deviations]
    else:
        out.append("- **Deviations from an ordinary run:** none. Every scheduling decision "
                   "is the ordinary one: the scenario alone triggers it.")
    call = (focus.path, focus.call) if focus is not None and focus.call is not None else None
    out += [f"- **Reference server:** {reference.summary(call)}.", "",
            f"Replay it {where.run_from} (each exits 1 while the bug is present; both need "
            "the harness installed: `pip install` of its repository, it is not on PyPI):",
            "",
            "```", f"harness replay {where.trace}", f"pytest {where.repro}", "```", "",
            f"On another release: `harness replay {where.trace} --server "
            f"{target.get('server')}==X`, or `HARNESS_SERVER={target.get('server')}==X "
            f"pytest {where.repro}`. A fix should hold in every ordering of this scenario, "
            f"not only this one: `harness exhaust {where.trace} --server PATH-OR-RELEASE` "
            "runs each one with at most one deviation from the ordinary run, as does "
            f"`HARNESS_SERVER=PATH-OR-RELEASE HARNESS_DEVIATIONS=1 pytest {where.repro}`.",
            "",
            "## Details", "",
            f"**Kind:** `{kind}`: {KINDS.get(kind, '')}.", "",
            f"**Signature:** `{finding['signature']}`", "",
            *_rest_of_message(finding["message"]),
            *_waiting_section(waiting or []),
            "### Timeline", "", "```mermaid", *_mermaid(replay_log), "```", "",
            "### Scenario", "",
            f"Scenario family `{scenario.get('family')}`; "
            + _how_found(finding)
            + f"the {'shrunk ' if finding.get('shrunk', True) else ''}trace makes "
            f"{plural(len(trace.decisions), 'decision')}. As JSON, "
            "fields at "
            "their defaults left out (trace.json has them all):", "",
            "```json", *json_lines(scenario_json(scenario)), "```", "",
            "### Environment", "",
            *(f"- {line}" for line in target_lines(target, env)),
            f"- {harness_line(str(trace.meta.get('python', '?')))}",
            f"- reference server: {_reference_env(reference)}", "",
            "### The reference server", "", reference.section(where), ""]
    return "\n".join(out)


def _how_found(finding: dict[str, Any]) -> str:
    if finding.get("source", "search") != "search":
        return "an earlier search found it and stored it, and this one retried it first; "
    if finding.get("runs_to_find"):
        return f"the search needed {plural(finding['runs_to_find'], 'run')} to find it; "
    return ""


def _what_went_wrong(message: str) -> str:
    """The message in one line: a message of several (a stuck run's: "... at:" and a
    stack) gives its headline and the last line, the rest is under Details."""
    lines = message.strip().splitlines() or [""]
    if len(lines) == 1:
        return lines[0].rstrip(".")
    return f"{lines[0].rstrip(':')} `{lines[-1].strip()}` (the whole message is below)"


def _rest_of_message(message: str) -> list[str]:
    """The lines of a message after its headline (where a stuck run spun), verbatim."""
    rest = message.strip().splitlines()[1:]
    return ["**The whole message:**", "", "```", message.strip(), "```", ""] if rest else []


def _blocked_at(signature: str) -> str:
    return signature.split("blocked at ", 1)[1]


def _reference_env(reference: ReferenceRun) -> str:
    env = reference.env or {}
    deps = ", ".join(f"{k} {v}" for k, v in sorted(env.get("installed", {}).items()))
    verdict = reference.verdict
    outcome = "not replayed" if verdict is None else (
        "fails too" if verdict["failures"] else "passes every oracle")
    return f"{deps or 'built into the harness'} (servers/reference/): {outcome} on the " \
           "same trace"


REPRO = '''"""Replays {kind} on {name}; fails while the bug is present.

Run it {run_from}:

    pytest {repro}

It carries its trace (TRACE, below: the trace.json beside it), so it also runs alone,
copied anywhere or attached to a bug report, wherever asgi-race-harness is installed
(`pip install` of its repository, or of a checkout: it is not on PyPI). Its first run
installs the release under test into .harness-cache (HARNESS_CACHE moves it), about
100 MB, with every release's dependencies as of its own date.
Point it at another release with HARNESS_SERVER={server}==X, or at a working copy
or commit with HARNESS_SERVER=./path or git+REPO@REV (the trace is then replayed
leniently, as the code paths may differ). Unset, it replays on the trace's own
target, strictly.

A fix should hold in every ordering of this scenario, not only the trace's own: with
HARNESS_DEVIATIONS=K it also runs each ordering with at most K deviations from the
ordinary run (as `harness exhaust` does; K=1 is typically hundreds of orderings, K=2
tens of thousands, minutes) and fails if any of them shows {kind}. It prints its
progress as it goes, past pytest's output capture, and stops at harness exhaust's
limit of orderings, warning if that cut it short: HARNESS_MAX_RUNS=N raises it.
"""

import warnings

from harness.api import RunLimitWarning, exhaust_trace, replay_trace, repro_settings


def say(line):
    print("exhaust:", line.strip(), flush=True)


def test_the_trace_no_longer_shows_{slug}(capsys):
    # HARNESS_SERVER, HARNESS_DEVIATIONS and HARNESS_MAX_RUNS (None when unset), checked
    server, deviations, max_runs = repro_settings(TRACE)
    verdict = replay_trace(TRACE, server)
    same = [f for f in verdict["failures"] if f["kind"] == "{kind}"]
    assert not same, "\\n".join(f["message"] for f in same)
    if deviations is not None:
        with capsys.disabled():  # the walk's progress, on the terminal as it goes
            walk = exhaust_trace(TRACE, server, deviations, max_runs=max_runs, progress=say)
        same = [f for f in walk["findings"] if f["kind"] == "{kind}"]
        assert not same, "\\n".join(
            f"ordering {{f['runs_to_find']}}, {{f['deviations']}} deviations: {{f['message']}}"
            for f in same) + "\\n(harness exhaust on this trace writes a report of each)"
        print(f"none of the {{walk['runs']}} orderings within {{deviations}} deviations "
              "of the ordinary run shows {kind}")
        if not walk["complete"]:
            warnings.warn(f"only the first {{walk['runs']}} orderings within {{deviations}} "
                          "deviations ran (the run limit; HARNESS_MAX_RUNS=N raises it): "
                          "the rest were not checked",
                          RunLimitWarning)


TRACE = r"""
{trace}"""
'''


def write_report(root: Path, label: str, trace: Trace, finding: dict[str, Any],
                 replay_log: list[str], env: dict[str, Any] | None,
                 reference: ReferenceRun,
                 waiting: list[dict[str, Any]] | None = None) -> Path:
    """Write the report folder of `finding` (its "request" names the request it is
    about, when the replay said); `reference` is the reference server's run of it."""
    final = report_dir(root, label, finding["kind"], finding["signature"])
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        os.chmod(work, 0o777 & ~UMASK)  # as mkdir would make it, not mkdtemp's owner-only 0700
        target = trace.target or {}
        where = Where.of(final)
        (work / "trace.json").write_text(trace.dumps())
        (work / "report.md").write_text(
            render_markdown(trace, finding, replay_log, env, where, reference, waiting))
        (work / "test_repro.py").write_text(REPRO.format(
            kind=finding["kind"], slug=finding["kind"].replace("-", "_"),
            name=target_name(target), server=target.get("server"),
            run_from=where.run_from, repro=where.repro, trace=trace.dumps()))
        put_in_place(work, final)
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        name_the_file(exc, final)
        raise
    return final


def put_in_place(work: Path, final: Path, tries: int = 100) -> None:
    """Rename the finished folder `work` to `final`, replacing whatever is there, safely
    against other processes doing the same: a rename never overwrites a folder, so the
    one in the way is first renamed aside (atomically, to a name only this call uses) and
    removed. Whoever renames last wins; nobody fails, nothing is left aside. An interrupt
    waits for the swap: between its two renames there is no report in place (an explore
    replaces each failure's report once it is shrunk)."""
    for _ in range(tries):
        try:
            os.rename(work, final)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        aside = final.with_name(f".old-{final.name}-{uuid.uuid4().hex}")
        with interrupts_held():
            try:
                os.rename(final, aside)
            except FileNotFoundError:
                continue  # another writer moved it first: try again
            with contextlib.suppress(OSError):  # another writer got there: it wins
                os.rename(work, final)
            shutil.rmtree(aside, ignore_errors=True)
        if not work.exists():
            return
    raise OSError(f"could not put {final} in place after {tries} tries")
