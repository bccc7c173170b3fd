"""Which parallel job does a piece of work that all of them would: the first to claim it.

Parallel jobs (`explore --jobs N`) are separate processes with searches of their own, so
two of them often meet the same failure. Each still reports it as detected (that costs
one replay), but only one shrinks it: shrinking is most of a failure's cost, and the
explore keeps one shrunk report per failure anyway. Likewise each stored example is
retried, and the example database reused, by one job. A claim is a file created with
O_EXCL in a folder the jobs share, which the operating system makes atomic between
processes; nothing has to tell a running job anything.

A claim that cannot be made for any other reason (the folder is gone) counts as won:
the work is done twice, as before, rather than not at all. For the same reason a job
that stops on an error releases the failures it claimed and had not shrunk yet: the
other jobs, which counted them as another's, take them up when they meet them again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path


class Claims:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, work: tuple[str, ...]) -> bool:
        """True if this process is the first to claim `work` (a failure's kind and
        signature, or what the search engine names other work by)."""
        try:
            os.close(os.open(self._path(work), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        except OSError:
            return True
        return True

    def release(self, work: tuple[str, ...]) -> None:
        """Give `work` back undone (its job stopped on an error): the next job to claim
        it does it."""
        with contextlib.suppress(OSError):
            os.unlink(self._path(work))

    def _path(self, work: tuple[str, ...]) -> Path:
        return self.folder / hashlib.sha256("\0".join(work).encode()).hexdigest()[:32]
