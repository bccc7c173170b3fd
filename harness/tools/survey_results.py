"""What `harness survey` keeps and shows: one record per explored release and
protocol, the distinct failures across them, and the table and JSON written from
those.

Records are the survey's memory: each is written (atomically) the moment its
explore ends, under `<reports>/survey-results/`, with the settings it was made
with. A re-run reuses a record only when those settings, including a digest of
the harness's search code and the server's adapter, are the same; anything else is
explored again. Judging is not stored: it is redone from the registry's known
bugs each time the table is written, so a bug added to the registry re-labels
a finished survey without a new search.

A distinct failure is (protocol, kind, signature with line numbers aside, the
known bugs that explain it): the same close found on ten releases, its lines
moved by unrelated edits, is one failure found on ten releases, while a
failure a known bug explains on old releases and nothing explains on newer ones
(a regression) is two.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import Version

import harness
from harness.search.trace import write_atomically
from harness.targets.registry import TargetEntry
from harness.tools.bisect import shape
from harness.tools.judgement import judge

FORMAT = "asgi-race-harness/survey"
VERSION = 1
RECORD = "asgi-race-harness/survey-record"


def code_digest(entry: TargetEntry) -> str:
    """What a search's result depends on besides its settings: the harness's code up to
    the targets stage (tools/, which only run, word and show searches, is left out, so a
    change to a report or this table keeps a survey), the entry (its known bugs aside:
    they only label findings) and the adapter class."""
    h = hashlib.sha256()
    root = Path(harness.__file__).parent
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] in ("tools", "api.py"):
            continue
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    h.update(repr(dataclasses.replace(entry, known_bugs=())).encode())
    module, _, name = entry.adapter.partition(":")
    try:
        h.update(inspect.getsource(getattr(importlib.import_module(module), name)).encode())
    except (ImportError, AttributeError, OSError, TypeError):
        h.update(entry.adapter.encode())  # not importable here: its name stands for it
    return h.hexdigest()[:16]


class RecordStore:
    """One JSON file per (release, protocol) under `folder`; reused only with the same
    settings."""

    def __init__(self, folder: Path, settings: dict[str, Any]) -> None:
        self.folder, self.settings = folder, settings

    def path(self, server: str, version: str, http: str) -> Path:
        return self.folder / f"{server}-{version}-{http}.json"

    def get(self, server: str, version: str, http: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path(server, version, http).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != RECORD \
                or data.get("settings") != self.settings:
            return None  # another survey's, or an older harness's: explored again
        return data

    def put(self, record: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {"format": RECORD, "settings": self.settings, **record}
        write_atomically(self.path(record["server"], record["version"], record["http"]),
                         json.dumps(data, indent=1) + "\n")

    def side_file(self, name: str) -> Path:
        return self.folder / name


@dataclass
class Distinct:
    """One distinct failure across the survey, and where it was found."""

    id: str
    http: str
    kind: str
    signature: str  # as found on the oldest release
    known: list[dict[str, Any]]  # [{"name", "fixed"}]: the bugs that explain it
    found_on: list[str] = field(default_factory=list)  # releases, oldest first
    traces: dict[str, str] = field(default_factory=dict)  # release -> trace.json
    bisect: dict[str, Any] | None = None  # survey_bisect's answer, when it ran

    @property
    def unexplained(self) -> bool:
        return not self.known

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "http": self.http, "kind": self.kind,
                "signature": self.signature, "verdict": "unexplained" if self.unexplained
                else "known", "known_bugs": self.known, "found_on": self.found_on,
                "traces": self.traces, "bisect": self.bisect}


def known_bugs(entry: TargetEntry, version: str, http: str,
               finding: dict[str, Any]) -> list[dict[str, Any]]:
    """The known bugs of `entry` that explain one finding on a release from the index."""
    names = judge([finding], entry, version, http, "", source=False).explained_by
    bugs = {b.name: b for b in entry.known_bugs}
    return [{"name": n, "fixed": bugs[n].fixed, "versions": bugs[n].versions or "every release"}
            for n in names]


def distinct_failures(entry: TargetEntry, records: list[dict[str, Any]]) -> list[Distinct]:
    """Every distinct failure of the done records, numbered in order of first finding
    (oldest release first, then protocol). Each record's failures get their id."""
    groups: dict[tuple[Any, ...], Distinct] = {}
    for record in sorted(records, key=lambda r: (Version(r["version"]), r["http"])):
        for f in record.get("failures", []):
            known = known_bugs(entry, record["version"], record["http"], f)
            key = (record["http"], f["kind"], shape(f["signature"]),
                   tuple(k["name"] for k in known))
            group = groups.get(key)
            if group is None:
                group = groups[key] = Distinct(f"F{len(groups) + 1}", record["http"],
                                               f["kind"], f["signature"], known)
            if record["version"] not in group.found_on:
                group.found_on.append(record["version"])
            if f.get("trace"):
                group.traces[record["version"]] = f["trace"]
            f["id"] = group.id
    return list(groups.values())


# -- rendering --------------------------------------------------------------------------
def short_name(name: str) -> str:
    """A known bug's name as a table cell: its upstream reference, or the start of the
    description of a find of this harness (a registry name "new: ...", which after
    "known: " would read as a contradiction)."""
    head, _, rest = name.partition(":")
    if head.strip() != "new" or not rest:
        return head
    words = rest.split(",")[0].split()
    return 'harness find "' + " ".join(words[:8]) + (' ..."' if len(words) > 8 else '"')


def _known_fix(k: dict[str, Any]) -> str:
    if k["fixed"]:
        return f"fixed in {k['fixed']}"
    return f"no fix listed (the registry lists it for {k['versions']})"


def _fixed_text(d: Distinct) -> str:
    if d.known:
        return "; ".join(f"known: {short_name(k['name'])}, {_known_fix(k)}" for k in d.known)
    b = d.bisect
    if b is None:
        return "unexplained"
    return f"unexplained; introduced: {b['introduced_text']}; fixed: {b['fixed_text']}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(title: str, records: list[dict[str, Any]], failures: list[Distinct],
             skipped: list[tuple[str, str]], state: str) -> str:
    by_id = {d.id: d for d in failures}
    lines = [f"# {title}", ""]
    if state != "completed":
        lines += [f"State: {state} (the table holds what was done; re-run the same command "
                  "to go on).", ""]
    lines += ["| release | protocol | runs | failures found |", "|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (Version(r["version"]), r["http"])):
        if r["state"] == "error":
            found = f"not explored: {r['error']}"
        elif not r["failures"]:
            found = "none"
        else:
            found = "<br>".join(
                f"{f['id']} {f['kind']} ({_fixed_text(by_id[f['id']])})"
                for f in r["failures"])
        runs = "" if r["state"] == "error" else \
            f"{r['runs']} ({r['seconds_searching']:.0f} s)"
        lines.append(f"| {r['version']} | {r['http']} | {runs} | {_cell(found)} |")
    if failures:
        lines += ["", "## Distinct failures", "",
                  "| id | protocol | kind | signature | judged | found on | introduced | "
                  "fixed | trace |", "|---|---|---|---|---|---|---|---|---|"]
        for d in failures:
            if d.known:
                judged = "; ".join(k["name"] for k in d.known)
                b = d.bisect
                introduced = f"bisect: {b['introduced_text']}" if b else "(known bug)"
                fixed = ", ".join(_known_fix(k) for k in d.known) + (
                    f"; bisect: {b['fixed_text']}" if b else "")
            else:
                judged = "unexplained"
                b = d.bisect
                introduced = b["introduced_text"] if b else "not bisected"
                fixed = b["fixed_text"] if b else "not bisected"
            trace = d.traces.get(d.found_on[-1]) or next(iter(d.traces.values()), "")
            lines.append("| " + " | ".join(_cell(x) for x in (
                d.id, d.http, d.kind, f"`{d.signature}`", judged, ", ".join(d.found_on),
                introduced, fixed, trace)) + " |")
    if skipped:
        lines += ["", "Not explored (the registry lists them as unrunnable): "
                  + "; ".join(f"{v} ({why})" for v, why in skipped) + "."]
    return "\n".join(lines) + "\n"


def summary_json(command: dict[str, Any], state: str, exit_code: int | None,
                 records: list[dict[str, Any]], failures: list[Distinct],
                 skipped: list[tuple[str, str]]) -> str:
    keep = ("server", "version", "http", "state", "error", "runs", "seconds_searching",
            "seconds_shrinking", "failures", "explore_exit_code")
    data = {"format": FORMAT, "version": VERSION, "state": state, "exit_code": exit_code,
            "command": command,
            "targets": [{k: r.get(k) for k in keep} for r in sorted(
                records, key=lambda r: (Version(r["version"]), r["http"]))],
            "failures": [d.to_json() for d in failures],
            "skipped": [{"version": v, "reason": why} for v, why in skipped]}
    return json.dumps(data, indent=1) + "\n"


def write_outputs(json_path: Path | None, markdown_path: Path | None, text_json: str,
                  text_markdown: str) -> None:
    for path, text in ((json_path, text_json), (markdown_path, text_markdown)):
        if path is not None:
            write_atomically(path, text)
