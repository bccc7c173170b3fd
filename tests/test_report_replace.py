"""Report folders are replaced safely across processes: every writer succeeds, the folder
is always one writer's whole output, and nothing is left aside."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WRITER = """
import sys, tempfile
from pathlib import Path
from harness.tools.report import put_in_place
final, me = Path(sys.argv[1]), sys.argv[2]
for i in range(400):
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    for name in ("trace.json", "report.md", "test_repro.py"):
        (work / name).write_text(f"{me} {i}")
    put_in_place(work, final)
"""


def test_four_processes_replacing_one_report_folder_all_succeed_and_leave_nothing(
        tmp_path: Path):
    final = tmp_path / "uvicorn-0.11.3-h11" / "receive-hang-e2bf0886"
    final.parent.mkdir()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(final), f"w{n}"], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True) for n in range(4)]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    assert [p.name for p in final.parent.iterdir()] == [final.name]  # no .old-*, no .tmp-*
    contents = {(final / name).read_text() for name in ("trace.json", "report.md",
                                                        "test_repro.py")}
    assert len(contents) == 1  # one writer's whole output, never a mix


def test_an_interrupt_during_the_swap_waits_until_the_new_report_is_in_place(
        tmp_path: Path, monkeypatch):
    # An explore replaces a failure's report once it is shrunk: a Ctrl-C between the
    # two renames must not leave the failure with no report at all.
    import os
    import signal

    import pytest

    from harness.tools import report

    final, work = tmp_path / "report", tmp_path / ".tmp-new"
    for folder, text in ((final, "detected"), (work, "shrunk")):
        folder.mkdir()
        (folder / "report.md").write_text(text)
    rename = os.rename

    def interrupted_rename(src: Path, dst: Path) -> None:
        rename(src, dst)
        if Path(dst).name.startswith(".old-"):  # the old report is aside: Ctrl-C now
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(report.os, "rename", interrupted_rename)
    with pytest.raises(KeyboardInterrupt):
        report.put_in_place(work, final)
    assert (final / "report.md").read_text() == "shrunk"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
