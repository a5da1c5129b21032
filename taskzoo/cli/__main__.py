"""`python -m taskzoo.cli`: the `taskzoo` command."""

import sys

from taskzoo.cli import program

sys.exit(program())
