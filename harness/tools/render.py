"""Render Mermaid source to SVG in headless Chromium, to check that report timelines survive.

A Markdown viewer renders a report's timeline with Mermaid in a browser; text Mermaid
misreads (an entity code, a statement end) silently disappears from the picture. This
module does what such a viewer does, offline: it writes a page that loads the Mermaid
bundle installed by `npm ci` (node_modules/, from package-lock.json) from disk, renders
the source with Mermaid's default settings in Debian's headless Chromium, and hands
back the SVG. The page reports its outcome in one marked element of the dumped DOM,
base64-encoded so no markup inside the SVG can confuse the read; a Mermaid error comes
back as an error, never as an empty picture.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from harness.errors import EnvironmentFault, HarnessFault

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
CHROMIUM = "/usr/bin/chromium"
# Flags that keep a headless run offline, quiet and free of the machine's own profile.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
# Virtual time only passes while the page is idle, so the budget bounds Mermaid's timers,
# not its work; the wall-clock timeout is for a browser that never returns.
VIRTUAL_MS = 10_000
TIMEOUT_S = 60.0
SVG_NS = "{http://www.w3.org/2000/svg}"

_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><script src="{bundle}"></script></head>
<body><div id="stage"></div><pre id="result"></pre>
<script>
const SOURCE = {source};
const out = document.getElementById("result");
const b64 = (s) => {{
  const bytes = new TextEncoder().encode(s);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 8192) {{
    bin += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }}
  return btoa(bin);
}};
const say = (status, text) => {{ out.textContent = status + ":" + b64(text); }};
(async () => {{
  if (typeof mermaid === "undefined") {{ say("error", "the Mermaid bundle did not load"); return; }}
  mermaid.initialize({{startOnLoad: false}});
  try {{
    const {{svg}} = await mermaid.render("timeline", SOURCE);
    const stage = document.getElementById("stage");
    stage.innerHTML = svg;
    say("ok", new XMLSerializer().serializeToString(stage.querySelector("svg")));
  }} catch (e) {{
    say("error", String(e && e.message ? e.message : e));
  }}
}})();
</script></body></html>
"""
_BLOCK = re.compile(r"^```mermaid\n(.*?)^```$", re.S | re.M)
_ENTITY = re.compile(r"#(\d+);")
_ID = r"[A-Za-z_][\w]*"
_STATEMENTS = [
    re.compile(rf"participant {_ID} as (?P<label>.+)"),
    re.compile(rf"participant (?P<label>{_ID})"),
    re.compile(rf"{_ID} *--?(?:>>|>|x|\)) *[+-]?{_ID} *:(?P<label>.*)"),
    re.compile(rf"Note (?:over|left of|right of) {_ID}(?: *, *{_ID})? *:(?P<label>.*)"),
]
_RESULT = re.compile(r'<pre id="result">(ok|error):([A-Za-z0-9+/=]*)</pre>')


class MermaidError(HarnessFault):
    """Mermaid rejected the source: a timeline the harness wrote does not parse."""


def _browser() -> str:
    found = shutil.which("chromium") or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if found is None:
        raise EnvironmentFault(f"no Chromium at {CHROMIUM} or on PATH; run `make render-deps` "
                               "(installs Debian's chromium) or `apt-get install chromium`")
    return found


def _bundle() -> Path:
    if not BUNDLE.is_file():
        raise EnvironmentFault(f"no Mermaid bundle at {BUNDLE}; run `make render-deps` "
                               "(npm ci from package-lock.json)")
    return BUNDLE


def page(source: str, bundle: Path) -> str:
    """The HTML page that renders `source`; the JSON literal cannot close its <script>."""
    literal = json.dumps(source).replace("<", "\\u003c")
    return _PAGE.format(bundle=bundle.as_uri(), source=literal)


def render_svg(source: str) -> str:
    """The SVG Mermaid draws for `source`, as XML; MermaidError if Mermaid rejects it."""
    browser, bundle = _browser(), _bundle()
    with tempfile.TemporaryDirectory(prefix="harness-render-") as tmp:
        html = Path(tmp) / "timeline.html"
        html.write_text(page(source, bundle), encoding="utf-8")
        cmd = [browser, *FLAGS, f"--user-data-dir={tmp}/profile",
               f"--virtual-time-budget={VIRTUAL_MS}", "--dump-dom", html.as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S,
                                  check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise EnvironmentFault(f"{browser} did not finish within {TIMEOUT_S:g} s "
                                   "rendering a Mermaid timeline") from e
    found = _RESULT.search(done.stdout)
    if found is None:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise EnvironmentFault(f"{browser} exited {done.returncode} without a rendered "
                               f"timeline (its last words: {tail or 'none'})")
    status, text = found.group(1), base64.b64decode(found.group(2)).decode("utf-8")
    if status == "error":
        raise MermaidError(f"Mermaid could not render the timeline: {text}")
    return text


def svg_texts(svg: str) -> list[str]:
    """The text of every <text> element of `svg`, in document order (tspans joined)."""
    root = ET.fromstring(svg)
    return ["".join(el.itertext()) for el in root.iter(f"{SVG_NS}text")]


def mermaid_blocks(markdown: str) -> list[str]:
    """The source of each ```mermaid block of a Markdown document."""
    return [m.group(1) for m in _BLOCK.finditer(markdown)]


def labels(source: str) -> list[str]:
    """Every label of a sequence diagram as a reader should see it: each participant's
    name, each message's and each note's text, entity codes decoded and ends trimmed
    (Mermaid trims them too). A statement of any other kind is refused, so a label the
    check does not know about cannot go unchecked."""
    out = []
    for number, line in enumerate(source.splitlines(), 1):
        statement = line.strip()
        if not statement or statement == "sequenceDiagram" or statement.startswith("%%"):
            continue
        found = next((m for r in _STATEMENTS if (m := r.fullmatch(statement))), None)
        if found is None:
            raise MermaidError(f"line {number} of the timeline is no participant, message or "
                               f"note: {statement!r}; teach harness/tools/render.py its labels")
        out.append(_ENTITY.sub(lambda m: chr(int(m.group(1))), found.group("label")).strip())
    return out


def missing_labels(source: str, svg: str) -> list[str]:
    """The labels of `source` that `svg` does not show as often as the source has them."""
    shown = Counter(svg_texts(svg))
    return list((Counter(labels(source)) - shown).elements())
