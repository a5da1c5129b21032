"""`python -m taskzoo.cli`: the `taskzoo` command."""

import sys

from taskzoo.cli import main

sys.exit(main())
