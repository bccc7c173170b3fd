"""Reports: one folder per distinct failure, worth attaching to a bug report.

    reports/<server>-<version>-<http>/<kind>-<id>/
        trace.json      the shrunk, replayable trace
        report.md       what failed and where, the environment, the deviations
                        from an ordinary run, a Mermaid timeline, how to replay
        test_repro.py   a standalone pytest file that fails while the bug is present

A folder is written in a temporary sibling and renamed into place, so an
interrupted run never leaves half a report.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.http.app import AppBehaviour
from harness.http.oracles import KINDS
from harness.search.trace import Trace

MAX_TIMELINE = 120


def report_id(kind: str, signature: str) -> str:
    return hashlib.sha1(f"{kind}\n{signature}".encode()).hexdigest()[:8]


def report_dir(root: Path, label: str, kind: str, signature: str) -> Path:
    return root / label / f"{kind}-{report_id(kind, signature)}"


def describe_decision(what: str, n: int, choice: int) -> str:
    if what.startswith("arrive "):
        stream = what.split(" ", 1)[1]
        if choice == 1:
            return f"bytes in flight on {stream} were held back: something else ran first"
        return f"only the first {choice - 1} byte(s) in flight on {stream} arrived"
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


def _mermaid(log: list[str]) -> list[str]:
    lines = ["sequenceDiagram", "    participant C as Client", "    participant S as Server",
             "    participant A as App"]
    for entry in log:
        parts = entry.split(" ", 2)
        if len(parts) < 3:
            continue
        t, kind, detail = parts
        at = f"t={float(t):g}"
        if kind == "client-send":
            lines.append(f"    C->>S: {detail.split()[-1]} ({at})")
        elif kind in ("client-close", "client-reset", "client-shutdown"):
            lines.append(f"    C->>S: {kind.split('-')[1]} ({at})")
        elif kind == "recv":
            lines.append(f"    Note over S: reads {detail.split()[-1]}")
        elif kind == "send":
            lines.append(f"    S->>C: {detail.split()[-1]}")
        elif kind == "client-recv":
            lines.append(f"    Note over C: receives {detail.split()[-1]}")
        elif kind in ("close", "abort", "write_eof"):
            lines.append(f"    S->>C: {kind} ({at})")
        elif kind == "timer":
            lines.append(f"    Note over S: timer {mermaid_text(detail)} ({at})")
        elif kind == "asgi":
            req, rest = detail.split(" ", 1)
            word = rest.split(" ", 1)[0]
            text = mermaid_text(rest)
            arrow = "A->>S" if word in ("receive", "send") else "S-->>A"
            if word in ("call",):
                arrow = "S->>A"
            lines.append(f"    {arrow}: {mermaid_text(req)} {text}")
        elif kind == "end":
            lines.append(f"    Note over C,A: {mermaid_text(detail)}")
    if len(lines) > MAX_TIMELINE:
        cut = len(lines) - MAX_TIMELINE
        lines = [*lines[:4], f"    Note over C,A: ... {cut} earlier events omitted ...",
                 *lines[4 + cut + 1:]]
    return lines


def _waiting_section(waiting: list[dict[str, Any]]) -> list[str]:
    if not waiting:
        return []
    out = ["## Blocked await stacks", "",
           "Each receive() still waiting when the run went quiescent, outermost frame first:",
           ""]
    for w in waiting:
        out += [f"{w['request']} receive() #{w['call']}:", "```",
                *w["stack"], "```", ""]
    return out


def render_reference(verdict: dict[str, Any] | None, error: str | None, focus: list[str],
                     trace_path: str) -> str:
    """What the built-in reference server did on the same trace, for the report."""
    cmd = f"harness replay {trace_path} --server reference"
    if verdict is None:
        return f"Not replayed on the reference server: {error}."
    out = []
    if verdict["failures"]:
        found = "; ".join(f"{f['kind']}: {f['message']}" for f in verdict["failures"])
        out.append(f"On the same trace the reference server **also fails**: {found}. It "
                   "should pass every scenario; please report this against the harness.")
    else:
        out.append("On the same trace (the same scenario, its scheduling decisions followed "
                   "as far as they apply) the reference server passes every oracle.")
    if verdict.get("diverged_at") is not None:
        out.append(f"From decision {verdict['diverged_at']} on its run asked other questions "
                   "than the trace records, and took the ordinary choice for each.")
    asgi = [line for line in verdict["log"] if line.split(" ", 2)[1:2] == ["asgi"]]
    shown = [line for line in asgi if any(f" {r} " in line for r in focus)] or asgi
    what = f"the request{'s' if len(focus) > 1 else ''} {', '.join(focus)}" if focus \
        else "every request"
    out += ["", f"What the app saw there for {what} (virtual seconds, ASGI events):", "",
            "```", *shown[:MAX_TIMELINE], "```", "",
            f"Its whole timeline: `{cmd}`. How it avoids the race: "
            "servers/reference/README.md."]
    return "\n".join(out)


def render_markdown(trace: Trace, finding: dict[str, Any], replay_log: list[str],
                    env: dict[str, Any] | None, replay_cmd: str,
                    reference: str, waiting: list[dict[str, Any]] | None = None) -> str:
    target = trace.target or {}
    kind = finding["kind"]
    out = [
        f"# {kind} in {target.get('server')} {target.get('version')} ({target.get('http')})",
        "",
        f"**Kind:** `{kind}`: {KINDS.get(kind, '')}.",
        "",
        f"**Signature:** `{finding['signature']}`",
        "",
        f"**What happened:** {finding['message']}",
        "",
        *_waiting_section(waiting or []),
        "## Replay",
        "",
        "```",
        replay_cmd,
        "```",
        "",
        "`pytest test_repro.py` in this folder fails while the bug is present "
        f"(set `HARNESS_SERVER={target.get('server')}==X` to point it at another release).",
        "",
        "## The shrunk ordering",
        "",
        f"Scenario family `{trace.scenario.get('family')}`; "
        + (f"the search needed {finding['runs_to_find']} runs to find it; "
           if finding.get("runs_to_find") else "")
        + f"the shrunk trace makes {len(trace.decisions)} decisions.",
        "",
    ]
    deviations = [(i, d) for i, d in enumerate(trace.decisions) if d.choice]
    if deviations:
        out.append("It is an ordinary run except for these deviations:")
        out.append("")
        for i, d in deviations:
            out.append(f"- decision {i}: {describe_decision(d.what, d.n, d.choice)}")
    else:
        out.append("Every scheduling decision is the ordinary one: the scenario alone "
                   "(client script, app behaviour, settings) triggers it, no unusual timing.")
    out += ["", "Client connections:", ""]
    for i, conn in enumerate(trace.scenario.get("connections", []), start=1):
        reqs = ", ".join(
            f"{r['method']} ({r['framing']} body {r['body_size']}B"
            + (", HTTP/1.0" if r["http10"] else "") + (", close" if r["close"] else "")
            + (", expect 100" if r["expect_continue"] else "")
            + (f", after {r['pause']}s" if r["pause"] else "") + ")"
            for r in conn["requests"])
        mode = "pipelined" if conn["pipelined"] else "one after another"
        ending = "" if conn["end"] == "none" else (
            f"; then {conn['end']} {conn['end_moment']} (request {conn['end_request']}, "
            f"after {conn['end_delay']}s)")
        out.append(f"- c{i}: {mode}: {reqs}{ending}; reads {conn['read']}")
    out += ["", "App behaviour per request:", ""]
    defaults = AppBehaviour().to_json()
    for cid, index, b in trace.scenario.get("behaviours", []):
        plain = {k: b[k] for k in defaults if k in b and b[k] != defaults[k]}  # field order
        out.append(f"- /c{cid}/r{index}: {plain or 'read the body, answer in one chunk'}")
    out += ["", f"Server settings: `{trace.scenario.get('server')}`", "",
            "## Timeline", "", "```mermaid", *_mermaid(replay_log), "```", "",
            "## Environment", ""]
    out.append(f"- target: {target.get('server')} {target.get('version')}, "
               f"protocol {target.get('http')}")
    if target.get("construction"):
        out.append(f"- mounted as the release itself builds it: {target['construction']}")
    for shim in target.get("shims", []):
        out.append(f"- shim (added by the adapter for this Python): {shim}")
    out.append(f"- Python {trace.meta.get('python', '?')}")
    if env:
        deps = ", ".join(f"{k} {v}" for k, v in sorted(env.get("installed", {}).items()))
        by = f" (by {env['installer']})" if env.get("installer") else ""
        out.append(f"- installed{by}: {deps}")
        for note in env.get("fallbacks", []) + env.get("skipped", []):
            out.append(f"- fallback: {note}")
    out += ["", "## The reference server", "", reference, ""]
    return "\n".join(out)


REPRO = '''"""Replays {kind} on {server} {version} ({http}); fails while the bug is present.

Point it at another release with HARNESS_SERVER={server}==X (the trace is then
replayed leniently, as the code paths may differ).
"""

import os
from pathlib import Path

from harness.api import replay_trace_file

TRACE = Path(__file__).with_name("trace.json")
SERVER = os.environ.get("HARNESS_SERVER", "{server}=={version}")


def test_the_trace_no_longer_shows_{slug}():
    verdict = replay_trace_file(TRACE, SERVER, http="{http}")
    same = [f for f in verdict["failures"] if f["kind"] == "{kind}"]
    assert not same, "\\n".join(f["message"] for f in same)
'''


def write_report(root: Path, label: str, trace: Trace, finding: dict[str, Any],
                 replay_log: list[str], env: dict[str, Any] | None,
                 reference: Callable[[str], str],
                 waiting: list[dict[str, Any]] | None = None) -> Path:
    """Write the report folder; `reference(trace_path)` renders its reference-server section."""
    final = report_dir(root, label, finding["kind"], finding["signature"])
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        target = trace.target or {}
        rel = os.path.relpath(final / "trace.json")
        cmd = f"harness replay {rel}"
        (work / "trace.json").write_text(trace.dumps())
        (work / "report.md").write_text(
            render_markdown(trace, finding, replay_log, env, cmd, reference(rel), waiting))
        (work / "test_repro.py").write_text(REPRO.format(
            kind=finding["kind"], slug=finding["kind"].replace("-", "_"),
            server=target.get("server"), version=target.get("version"),
            http=target.get("http")))
        put_in_place(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final


def put_in_place(work: Path, final: Path, tries: int = 100) -> None:
    """Rename the finished folder `work` to `final`, replacing whatever is there, safely
    against other processes doing the same: a rename never overwrites a folder, so the
    one in the way is first renamed aside (atomically, to a name only this call uses) and
    removed. Whoever renames last wins; nobody fails, nothing is left aside."""
    for _ in range(tries):
        try:
            os.rename(work, final)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        aside = final.with_name(f".old-{final.name}-{uuid.uuid4().hex}")
        try:
            os.rename(final, aside)
        except FileNotFoundError:
            continue  # another writer moved it first: try again
        shutil.rmtree(aside, ignore_errors=True)
    raise OSError(f"could not put {final} in place after {tries} tries")
