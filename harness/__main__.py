"""`python -m harness`: the `harness` command, for an environment without its script."""

import sys

from harness.tools.cli import main

sys.exit(main())
