"""Report timelines rendered by Mermaid in headless Chromium keep every label.

Each committed showcase report's timeline is rendered as a reader's Markdown viewer would
render it, and every participant name, message and note of its source must be text of
the SVG. `mermaid_text` is checked on labels that Mermaid would otherwise eat.
`make test` installs the browser and Mermaid (`make render-deps`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from harness.tools.render import (
    MermaidError,
    labels,
    mermaid_blocks,
    missing_labels,
    render_svg,
    svg_texts,
)
from harness.tools.report import mermaid_text

ROOT = Path(__file__).resolve().parents[1]
REPORTS = sorted(ROOT.glob("reports/*/*/report.md"))

# Each is a label Mermaid 11 loses, cuts or rejects when written raw (or would, on a
# line of its own), plus the escapes' own characters and the plainly long.
TRICKY = [
    "S-->>A /c1/r0 received #2 http.disconnect",
    "a;b;c",
    "#",
    "#35; written out",
    "#quot; named",
    "x < y > z",
    "<br> a <br/> b <BR />",
    "<b>bold</b> <script>alert(1)</script> <!-- c -->",
    "a & b &amp; c &lt; &#60;",
    "say \"hi\" 'there' `code`",
    "key: value: more",
    "S-->>A --> C->>S -x +1 -1",
    "%%{init: {'theme': 'dark'}}%% 50% %% not a comment",
    '{"type": "http.request", "body": "", "more_body": false}',
    "end",
    "loop",
    "Note over C: nested",
    "back\\slash",
    "multi\nline\ttab\x01",
    "é ü \u00a0 漢",
    "long " + "x" * 400,
]


def timeline(texts: list[str]) -> str:
    lines = ["sequenceDiagram", "    participant C as Client", "    participant S as Server"]
    for text in texts:
        lines += [f"    C->>S: {mermaid_text(text)}", f"    Note over C,S: {mermaid_text(text)}"]
    return "\n".join(lines) + "\n"


def test_there_are_showcase_reports_to_render() -> None:
    assert len(REPORTS) >= 5, REPORTS


@pytest.mark.parametrize("report", REPORTS, ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_every_label_of_a_showcase_timeline_is_in_its_rendered_svg(report: Path) -> None:
    (source,) = mermaid_blocks(report.read_text(encoding="utf-8"))
    assert len(labels(source)) > 3  # participants and at least one event
    svg = render_svg(source)
    assert missing_labels(source, svg) == []


def test_mermaid_text_keeps_every_tricky_label_whole_in_the_rendered_svg() -> None:
    svg = render_svg(timeline(TRICKY))
    shown = Counter(svg_texts(svg))
    # Control characters are written as Python escapes: one line, still readable.
    expected = [t.replace("\n", "\\n").replace("\t", "\\t").replace("\x01", "\\x01")
                for t in TRICKY]
    lost = [t for t in expected if shown[t] < 2]  # once as a message, once as a note
    assert lost == []
    assert shown["Client"] == shown["Server"] == 2  # top and bottom of each lifeline


def test_a_label_written_raw_is_lost_where_it_is_written_escaped_it_is_not() -> None:
    # The check can fail: Mermaid 11 reads "<br>" as a line break and a "%%{...}%%" as a
    # directive, so raw they are not in the picture.
    raw = "sequenceDiagram\n    C->>S: a <br> b\n    C->>S: x %%{init: {}}%% y\n"
    assert missing_labels(raw, render_svg(raw)) == ["a <br> b", "x %%{init: {}}%% y"]


def test_a_mermaid_syntax_error_is_raised_not_returned_as_a_picture() -> None:
    with pytest.raises(MermaidError, match="Parse error on line 3"):
        render_svg("sequenceDiagram\n    C->>S: one\nline two\n")


def test_labels_reads_participants_messages_and_notes_and_decodes_entities() -> None:
    source = ("sequenceDiagram\n    participant C as Client\n    participant S\n"
              "    C->>S: 42B (t=0)\n    S-->>C: received #35;2 a#59;b \n"
              "    Note over C,S: quiescent\n    Note left of C: x#60;y\n")
    assert labels(source) == ["Client", "S", "42B (t=0)", "received #2 a;b", "quiescent",
                              "x<y"]


def test_labels_refuses_a_statement_it_cannot_check() -> None:
    with pytest.raises(MermaidError, match="line 2 .* 'autonumber'"):
        labels("sequenceDiagram\n    autonumber\n")
