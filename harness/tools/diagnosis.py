"""The words of a report: a one-line diagnosis, and what the client and the app did.

Everything here is derived from the failure (kind, signature, message), the
scenario and the replayed event log; nothing names a bug or a server. The
oracles' signatures say which variant of a failure it is ("receive() after
close: ..."), the scenario says what the request was, and the log says what
happened around it (the client reset, the app raised, an earlier receive()
returned http.disconnect, the timer that finally woke it). A maintainer can
paste the diagnosis line as the title of a bug report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from harness.http.oracles import KINDS

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight")
CLIENT_ENDS = {"client-reset": "reset", "client-close": "closed",
               "client-shutdown": "half-closed"}
END_WORDS = {"reset": "reset", "close": "closed", "half-close": "half-closed"}
RUDE_WORDS = {  # harness/http/client.py, RUDE
    "after-close": "it wrote requests after one that asked to close, and after a "
    "response that said the server closes (RFC 9112, 9.6)",
    "crlf": "it wrote an empty line after every request (RFC 9112, 2.2)",
}


def ordinal(i: int) -> str:
    return ORDINALS[i] if i < len(ORDINALS) else f"#{i + 1}"


def number(n: int) -> str:
    return NUMBERS[n] if n < len(NUMBERS) else str(n)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class Event:
    time: float
    kind: str
    detail: str


@dataclass
class Focus:
    """The request a failure is about, and what the log says happened to it."""

    cid: int
    index: int
    call: int | None  # which of its receive() calls failed, if the message names one
    events: list[Event] = field(default_factory=list)  # the run's, in order

    @property
    def path(self) -> str:
        return f"/c{self.cid}/r{self.index}"

    def asgi(self, path: str | None = None) -> list[tuple[float, str]]:
        """(time, "receive #2"...) of one request's ASGI events."""
        prefix = f"{path or self.path} "
        return [(e.time, e.detail[len(prefix):]) for e in self.events
                if e.kind == "asgi" and e.detail.startswith(prefix)]

    def call_time(self) -> float | None:
        return next((t for t, d in self.asgi() if d == f"receive #{self.call}"), None)


def parse_log(log: list[str]) -> list[Event]:
    out = []
    for line in log:
        parts = line.split(" ", 2)
        if len(parts) >= 2:
            try:
                out.append(Event(float(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
            except ValueError:
                continue
    return out


def focus_of(finding: dict[str, Any], log: list[str]) -> Focus | None:
    where = finding.get("request") or finding.get("message", "").split(":", 1)[0]
    m = re.fullmatch(r"/c(\d+)/r(\d+)", where.strip())
    if m is None:
        return None
    call = re.search(r"receive\(\) #(\d+)", finding.get("message", ""))
    return Focus(int(m[1]), int(m[2]), int(call[1]) if call else None, parse_log(log))


def target_name(target: dict[str, Any]) -> str:
    """"uvicorn 0.11.3 (h11)", and where it was built from when not a release from the
    index (a working copy or a git commit, as its --server spelling names it)."""
    name = f"{target.get('server')} {target.get('version')} ({target.get('http')})"
    return name + (f" from {target['source']}" if target.get("source") else "")


# -- the scenario in words ----------------------------------------------------------
def request_words(req: dict[str, Any]) -> str:
    """"a GET", "a POST with a 7-byte chunked body"."""
    method = req.get("method", "GET")
    text = f"{'an' if method[:1] in 'AEIOU' else 'a'} {method}"
    if req.get("framing", "none") != "none":
        chunked = " chunked" if req["framing"] == "chunked" else ""
        text += f" with a {req.get('body_size', 0)}-byte{chunked} body"
    return text


def subject(scenario: dict[str, Any], focus: Focus) -> str:
    """The focused request as a maintainer would name it."""
    conns = scenario.get("connections", [])
    if not 0 < focus.cid <= len(conns):
        return focus.path
    conn = conns[focus.cid - 1]
    reqs = conn.get("requests", [])
    if len(reqs) <= 1 or focus.index >= len(reqs):
        text = request_words(reqs[focus.index]) if focus.index < len(reqs) else focus.path
    elif conn.get("pipelined"):
        text = f"the {ordinal(focus.index)} of {number(len(reqs))} pipelined requests"
    else:
        text = f"the {ordinal(focus.index)} request on a keep-alive connection"
    return text + (f" on connection c{focus.cid}" if len(conns) > 1 else "")


def client_account(scenario: dict[str, Any]) -> str:
    """What the client did, one clause per connection."""
    out = []
    for cid, conn in enumerate(scenario.get("connections", []), start=1):
        reqs = conn.get("requests", [])
        words = [request_words(r) for r in reqs]
        if len(set(words)) == 1 and len(words) > 1:  # "two GETs", "two POSTs, each with ..."
            method, _, body = words[0].split(" ", 1)[1].partition(" with ")
            said = f"{number(len(words))} {method}s" + (f", each with {body}" if body else "")
        else:
            said = ", then ".join(words)
        if len(reqs) > 1:
            said += " pipelined in one write" if conn.get("pipelined") else \
                ", one after another on one keep-alive connection"
        extras = [what for flag, what in (
            (any(r.get("http10") for r in reqs), "over HTTP/1.0"),
            (any(r.get("close") for r in reqs), "with Connection: close"),
            (any(r.get("expect_continue") for r in reqs), "with Expect: 100-continue"),
            (any(r.get("pause") for r in reqs), "pausing before some requests"),
            (any(r.get("after") == "sent" for r in reqs),
             "sending some requests before the previous response arrived"),
            (any(r.get("after") == "head" for r in reqs),
             "sending some requests while the previous response streamed"),
            (conn.get("read") == "slow", "reading the responses slowly"),
            (conn.get("read") == "stop", "never reading the responses")) if flag]
        said += "".join(f", {e}" for e in extras)
        if conn.get("rude", "none") != "none":
            said += f", breaking the rules: {RUDE_WORDS.get(conn['rude'], conn['rude'])}"
        end = conn.get("end", "none")
        if end != "none":
            said += f"; then it {END_WORDS.get(end, end)} the connection {_moment(conn)}"
        out.append(f"c{cid}: {said}" if len(scenario.get("connections", [])) > 1 else said)
    return "; ".join(out) or "no connections"


def _moment(conn: dict[str, Any]) -> str:
    moment, n = str(conn.get("end_moment", "")), ordinal(int(conn.get("end_request", 0)))
    text = {"after-responses": "after reading the responses",
            "after-send": "after sending its requests",
            "mid-headers": f"in the middle of the {n} request's head",
            "mid-body": f"in the middle of the {n} request's body",
            "mid-response": f"in the middle of the {n} response"}.get(moment, moment)
    delay = float(conn.get("end_delay", 0) or 0)
    if delay and text.startswith("after "):
        return f"{delay:g} s {text}"
    return text + (f", {delay:g} s later" if delay else "")


def behaviour_words(b: dict[str, Any]) -> str:
    """One request's app behaviour, in the order it runs (harness/http/app.py)."""
    steps = []
    if b.get("yields_before"):
        steps.append(f"yielded {plural(b['yields_before'], 'time')}")
    if b.get("sleep_before"):
        steps.append(f"slept {b['sleep_before']:g} s")
    steps.append({"all": "read the body", "one": "read one body message",
                  "none": "did not read the body"}.get(b.get("read", "all"), "read the body"))
    if b.get("watch_disconnect"):
        steps.append("started a disconnect watcher (a task calling receive() until "
                     "http.disconnect)")
    if b.get("wait_disconnect"):
        return ", ".join([*steps, "then, as a long poll, waited in receive() for "
                          "http.disconnect and returned without responding"])
    raise_at = b.get("raise_at", "never")
    if raise_at == "before-response":
        return ", ".join([*steps, "raised before responding"])
    steps.append("started the response")
    if raise_at == "after-start":
        return ", ".join([*steps, "raised"])
    chunks = int(b.get("chunks", 1))
    body = "sent the body in one message" if chunks <= 1 else f"sent the body in {chunks} parts"
    if chunks > 1 and b.get("yields_between"):
        body += f" with {plural(b['yields_between'], 'yield')} between"
    steps.append(body)
    if b.get("sleep_after"):
        steps.append(f"slept {b['sleep_after']:g} s")
    if b.get("receive_after"):
        steps.append("called receive() again")
    return ", ".join(steps)


def shutdown_account(scenario: dict[str, Any], log: list[str]) -> str | None:
    """When the server was told to shut down, and what became of it (None: it never was)."""
    spec = scenario.get("shutdown")
    if not isinstance(spec, dict):
        return None
    after, delay = int(spec.get("after", 0)), float(spec.get("delay", 0) or 0)
    when = "at the start" if not after else f"after the app's {ordinal(after - 1)} ASGI call"
    if delay:
        when += f" and {delay:g} s more"
    events = parse_log(log)
    got = next((e.time for e in events if e.kind == "signal"), None)
    done = next((e for e in events if e.kind == "shutdown"), None)
    said = f"SIGTERM {when}"
    if got is None:
        return said + "; it never reached the server"
    said += f" (handled at t={got:g})"
    if done is None:
        return said + "; the server's shutdown never returned"
    return said + f"; {done.detail} at t={done.time:g}"


def app_account(scenario: dict[str, Any], log: list[str]) -> list[str]:
    """What the app was to do per request; one the server never handed to the app says
    so (its plan, a scenario's, never ran)."""
    called = {words[2] for words in (line.split(" ", 4) for line in log)
              if words[1:4:2] == ["asgi", "call"]}
    return [f"/c{cid}/r{index}: {behaviour_words(b)}" if f"/c{cid}/r{index}" in called
            else f"/c{cid}/r{index}: never called by the server (it would have: "
                 f"{behaviour_words(b)})"
            for cid, index, b in scenario.get("behaviours", [])]


# -- the diagnosis ------------------------------------------------------------------
def diagnosis(target: dict[str, Any], finding: dict[str, Any], scenario: dict[str, Any],
              log: list[str]) -> str:
    """One sentence: which target, the failure kind, what is wrong in words, and the
    circumstances that matter ("uvicorn 0.11.3 (h11), receive-hang: the app's receive()
    for the second request on a keep-alive connection never returns, ...")."""
    kind, signature = finding["kind"], finding["signature"]
    who = f"{target_name(target)}, {kind}"
    focus = focus_of(finding, log)
    if kind == "shutdown-hang":  # its message is the sentence
        return f"{who}: {finding.get('message', '').strip().rstrip('.')}."
    if focus is None or kind not in ("receive-hang", "lost-disconnect"):
        message = finding.get("message", "").strip()
        # A message of several lines (a stuck run's stack) is not a sentence: its
        # signature says the same in one line.
        what = signature if "\n" in message else message.rstrip(".")
        return f"{who}: {KINDS.get(kind, kind)}: {what}."
    clause = _receive_clause(kind, signature, subject(scenario, focus), focus)
    notes = _circumstances(signature, scenario, focus)
    return f"{who}: {clause}" + (f" ({'; '.join(notes)})" if notes else "") + "."


def _receive_clause(kind: str, signature: str, who: str, focus: Focus) -> str:
    variant, _, how = signature.partition(": ")
    if kind == "receive-hang":
        return f"the app's receive() for {who} never returns, though that request had " \
               "fully arrived"
    if variant in ("receive() after the response", "receive() pending at the response's end"):
        which = "after its response" if "after" in variant else \
            "still pending when the app finished its response"
        start = f"the app's receive() {which} to {who}"
        if how.startswith("returned "):
            return f"{start} {how.replace('returned', 'returns', 1)} instead of http.disconnect"
        if "only after virtual time passed" in how:
            return f"{start} returns http.disconnect only {_late(focus)}, instead of at once"
        return f"{start} never returns instead of returning http.disconnect"
    if variant == "receive() after close":
        return f"the app's receive() for {who} never returns after the server closed the " \
               "connection"
    if variant == "receive() after client EOF":
        return f"the app's receive() for {who} waits forever for more of the body after the " \
               "client half-closed the connection"
    if variant == "receive() after the server's response":
        return f"the app's receive() for {who} never returns though the server had " \
               "completed the response on the wire"
    if variant == "receive() during shutdown":
        which = "left waiting while the server shut down"
        if how.startswith("blocked at"):
            return f"the app's receive() for {who}, {which}, never returns: no " \
                   "http.disconnect before the process exits"
        ending = re.sub(r"^(rais|return)ed ", r"\1ing ", how)  # "ends by raising X"
        return f"the app's receive() for {who}, {which}, ends by {ending}, never by " \
               "http.disconnect"
    if variant == "receive() after http.disconnect":
        return f"the app's receive() for {who} never returns after an earlier one had " \
               "returned http.disconnect"
    return f"the app's receive() for {who}: {signature}"


def _late(focus: Focus) -> str:
    """"when the timer X fires 5 s later": what a late http.disconnect waited for."""
    start = focus.call_time()
    back = next((t for t, d in focus.asgi() if d.startswith(f"received #{focus.call} ")), None)
    if start is None or back is None:
        return "after virtual time passed"
    timer = [e.detail for e in focus.events if e.kind == "timer" and e.time == back]
    return (f"when the timer {timer[-1]} fires " if timer else "") + f"{back - start:g} s later"


def _circumstances(signature: str, scenario: dict[str, Any], focus: Focus) -> list[str]:
    """What around the failure a maintainer needs to see at once (at most three)."""
    notes = []
    until = focus.call_time()
    upto = [e for e in focus.events if until is None or e.time <= until]
    if "client EOF" not in signature:
        ends = [CLIENT_ENDS[e.kind] for e in upto
                if e.kind in CLIENT_ENDS and e.detail.endswith(f"[c{focus.cid}]")]
        if ends:
            notes.append(f"the client had {ends[0]} the connection")
    own = [d for _, d in focus.asgi()]
    if "raised" in own:
        started = any(d.startswith("sent http.response.start") for d in own)
        notes.append(f"the app had raised {'after starting' if started else 'before'} "
                     "its response")
    if "watch" in own:
        notes.append("the app was watching for a disconnect")
    earlier = [d for d in own if d.startswith("received #") and d.endswith(" http.disconnect")]
    if focus.call is not None and any(int(d.split()[1][1:]) < focus.call for d in earlier):
        notes.append("an earlier receive() had returned http.disconnect")
    if "watch" not in own:
        conn = (scenario.get("connections") or [{}])[focus.cid - 1] \
            if focus.cid <= len(scenario.get("connections", [])) else {}
        for other in range(len(conn.get("requests", []))):
            if other != focus.index and "watch" in [d for _, d in focus.asgi(
                    f"/c{focus.cid}/r{other}")]:
                notes.append(f"the {ordinal(other)} request's app was watching for a "
                             "disconnect")
    return notes[:3]
