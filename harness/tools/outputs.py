"""Where a command's results go: checked before it does any work, made as it starts,
and taken back if it stops on an error with nothing written there (a refused command
leaves nothing behind, even when the refusal comes late: a release that cannot be
installed is known only once the install is tried)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from harness.errors import InputError


def folder_name(text: str) -> str:
    """A folder option's value (argparse type): an empty one would quietly mean the
    current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty; name a folder")
    return text


def file_name(text: str) -> str:
    """A file option's value (argparse type). "-" is no stream here: the file is written
    whole, by a rename, and the command's own report goes to standard output."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty; name a file")
    if text == "-":
        raise argparse.ArgumentTypeError("'-' would be a file named '-': this is written "
                                         "whole to a file; name it, e.g. summary.json")
    return text


def check_output_folder(folder: Path, option: str) -> None:
    """Refuse, before the command does its work, a folder `option` could not write into:
    a search must not end on an error about where its results go. It creates nothing
    (a refused command leaves nothing behind): a probe file goes in the nearest folder
    that exists, and is removed."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, f"{existing} is a file")
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{option}: cannot write in {folder} ({exc.strerror or exc}); name "
                         "a folder you can write") from None


def make_folder(folder: Path) -> list[Path]:
    """Make `folder` and its missing parents; return those it made, deepest first."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return made


def take_back(made: list[Path]) -> None:
    """Remove the folders `make_folder` made, deepest first, while they are empty."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:  # something was written there (or it is gone): keep the rest
            return
