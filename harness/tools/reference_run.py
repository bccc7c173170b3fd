"""Where a report's commands run from, and what the reference server did on its trace.

A report names its files relative to the root of the project it sits in (the
nearest folder upward holding .git or pyproject.toml), so its commands work from
that root on any checkout; outside a project, by absolute path. The reference
server's run of the same trace is summed up in one sentence for the account
and shown in full in the details.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.tools.log_lines import folded

MAX_SHOWN = 120  # ASGI events of the reference run shown at most


# -- where the report's commands run from ---------------------------------------------
def project_root(folder: Path) -> Path | None:
    """The nearest folder upward from `folder` (itself included) that holds .git (a
    folder, or a worktree's file) or pyproject.toml: where a maintainer runs commands."""
    for here in [folder, *folder.parents]:
        if (here / ".git").exists() or (here / "pyproject.toml").is_file():
            return here
    return None


@dataclass(frozen=True)
class Where:
    """How the report's commands name its files: relative to the enclosing project's root
    when it sits inside one (they then work from that root, on any checkout), else
    absolute (they work from anywhere)."""

    folder: str
    from_root: bool

    @classmethod
    def of(cls, final: Path) -> Where:
        final = final.resolve()
        root = project_root(final)
        if root is None:
            return cls(str(final), False)
        return cls(final.relative_to(root).as_posix(), True)

    @property
    def trace(self) -> str:
        return f"{self.folder}/trace.json"

    @property
    def repro(self) -> str:
        return f"{self.folder}/test_repro.py"

    @property
    def run_from(self) -> str:
        return "from the repository root" if self.from_root else "from any folder"


# -- the reference server's run ----------------------------------------------------
@dataclass(frozen=True)
class ReferenceRun:
    """What the built-in reference server did on the same trace: its verdict (None when
    it was not replayed, with `error` saying why), the requests the failure is about,
    and what it ran with."""

    verdict: dict[str, Any] | None
    error: str | None
    focus: list[str]
    env: dict[str, Any] | None = None

    def summary(self, call: tuple[str, int] | None) -> str:
        """One sentence for the account: passes or fails, and what the failing receive()
        returned there."""
        if self.verdict is None:
            return f"not replayed: {self.error}"
        if self.verdict["failures"]:
            return "**also fails** on the same trace (see below)"
        text = "passes every oracle on the same trace"
        if call is not None:
            path, n = call
            got = [line.split(" ", 2) for line in self.verdict["log"]
                   if f" asgi {path} received #{n} " in f" {line}"]
            if got:
                what = got[0][2].split(f"received #{n} ", 1)[1]
                text += f"; there {path}'s receive() #{n} returns {what} " \
                        f"(t={float(got[0][0]):g})"
        return text

    def section(self, where: Where) -> str:
        cmd = f"harness replay {where.trace} --server reference"
        if self.verdict is None:
            return f"Not replayed on the reference server: {self.error}."
        out = []
        if self.verdict["failures"]:
            found = "; ".join(f"{f['kind']}: {f['message']}" for f in self.verdict["failures"])
            out.append(f"On the same trace the reference server **also fails**: {found}. It "
                       "should pass every scenario; please report this against the harness.")
        else:
            out.append("On the same trace (the same scenario, its scheduling decisions "
                       "followed as far as they apply) the reference server passes every "
                       "oracle.")
        if self.verdict.get("diverged_at") is not None:
            asked = "more questions" if self.verdict.get("past_end") else "other questions"
            out.append(f"From decision {self.verdict['diverged_at']} on (numbered from 0) its "
                       f"run asked {asked} than the trace records, and took the ordinary "
                       "choice for each.")
        asgi = [line for line in self.verdict["log"] if line.split(" ", 2)[1:2] == ["asgi"]]
        focused = [line for line in asgi if any(f" {r} " in line for r in self.focus)]
        named = f"the request{'s' if len(self.focus) > 1 else ''} {', '.join(self.focus)}"
        if focused or (asgi and not self.focus):
            shown, heading = focused or asgi, (
                f"What the app saw there for {named if self.focus else 'every request'} "
                "(virtual seconds, ASGI events):")
        elif asgi:  # the failure's requests never reached the app there: the others did
            shown, heading = asgi, (f"There the app is never called for {named}; what it "
                                    "saw for the others (virtual seconds, ASGI events):")
        else:  # no request reached the app: the wire says why
            shown, heading = folded(self.verdict["log"]), (
                "There the app is never called; what happened instead (virtual seconds, "
                "events):")
        out += ["", heading, "", "```", *shown[:MAX_SHOWN], "```", "",
                f"Its whole timeline, {where.run_from}: `{cmd}`. How it avoids the race: "
                "servers/reference/README.md."]
        return "\n".join(out)
