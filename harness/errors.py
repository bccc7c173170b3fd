"""Every error the harness raises on purpose, classed by who is at fault.

The CLI has one handler for `HarnessError`: it prints the message (one line
naming the offending value and the fix; a harness fault adds its stack) and
exits 2.
Exit 1 is never used here: it means only "the harness found a failure in the
target", and that is a verdict, not an exception.

- `InputError`: the user's input (an unknown server, a malformed trace, a bad
  option). Fix the command.
- `EnvironmentFault`: this machine (a release that does not install, an index
  that cannot be reached, a damaged cache). Fix the environment.
- `TargetFault`: the server under test cannot even be set up (its constructor
  raises before any scenario runs). Not a race the harness found.
- `HarnessFault`: the harness broke its own promise (a replay that diverges
  from the run it recorded, its app model or an oracle crashed). The CLI says
  so, with the stack; report it against us.
"""

from __future__ import annotations

import errno


class HarnessError(Exception):
    exit_code = 2
    who = "harness"


class InputError(HarnessError, ValueError):
    who = "input"


class EnvironmentFault(HarnessError):
    who = "environment"


class TargetFault(HarnessError):
    who = "target"


class HarnessFault(HarnessError):
    who = "harness"


class RunLimitWarning(UserWarning):
    """A check that its run limit cut short: what ran passed, the rest was not checked.

    Its own category, so that a project whose pytest makes warnings errors can let this
    one through (`default::harness.api.RunLimitWarning`) and still keep the check."""


BY_WHO: dict[str, type[HarnessError]] = {
    cls.who: cls for cls in (InputError, EnvironmentFault, TargetFault, HarnessFault)
}


# File errors that are the machine's, whatever the harness was doing: no room (a full
# disk, a quota, a file system mounted read-only under a running search), or no
# permission for a file the error names (a reports folder or cache made read-only, or
# owned by another user), or something else in the way of a file or folder it names (a
# file where a report's folder goes). Any other OSError stays a fault of the harness's own.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
NO_PERMISSION = frozenset({errno.EACCES, errno.EPERM})
IN_THE_WAY = frozenset({errno.EEXIST, errno.ENOTDIR, errno.EISDIR})


def machine_fault(exc: BaseException) -> EnvironmentFault | None:
    """The environment fault `exc` is if the machine refused a file (see above), else None."""
    if not isinstance(exc, OSError):
        return None
    if exc.errno in NO_ROOM:
        where = f" {exc.filename}" if exc.filename else ""
        return EnvironmentFault(f"cannot write{where}: {exc.strerror}; make room there, or "
                                "write elsewhere (--reports, --json, HARNESS_CACHE)")
    if exc.errno in NO_PERMISSION and exc.filename:  # unnamed: not known to be a file's
        return EnvironmentFault(f"cannot use {exc.filename}: {exc.strerror}; give this user "
                                "access to it, or use another folder (--reports, --json, "
                                "HARNESS_CACHE)")
    if exc.errno in IN_THE_WAY and exc.filename:
        return EnvironmentFault(f"cannot write {exc.filename}: {exc.strerror} (a file stands "
                                "where a folder goes, or a folder where a file goes); move "
                                "it, or write elsewhere (--reports, --json, HARNESS_CACHE)")
    return None


def name_the_file(exc: BaseException, path: object) -> None:
    """A failed write's OSError names no file (the error of a write to an open file):
    name `path`, the one being written, so a message can say which it was."""
    if isinstance(exc, OSError) and exc.filename is None:
        exc.filename = str(path)


def rebuild(who: str, message: str) -> HarnessError:
    """The error a worker process reported, raised again on this side of the pipe."""
    return BY_WHO.get(who, HarnessFault)(message)
