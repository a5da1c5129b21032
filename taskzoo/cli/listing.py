"""`taskzoo list`: the tasks (with their aliases) and the models."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list", help="list tasks and models", description="List tasks and models.")
    p.set_defaults(handler=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    from taskzoo.tasks import TASKS, names

    print("tasks:")
    width = max(len(n) for n in names()) + 2  # the longest name still leaves a gap
    for name in names():
        cls = TASKS.get(name)
        aliases = TASKS.aliases_of(name)
        alias_txt = f" (aliases: {', '.join(aliases)})" if aliases else ""
        print(f"  {name:<{width}}{cls.description}{alias_txt}")
    from taskzoo.models import names as model_names

    print("models:")
    print("  " + ", ".join(model_names()))
    return 0
