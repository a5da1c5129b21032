"""The `taskzoo` command: list, run, predict, play, bench, chat, serve, export, download,
verify, weights (one module per subcommand; each adds its parser and sets its handler).

Usage errors (unknown task, bad override, a damaged run or card file) print one helpful
line and exit 2; other taskzoo errors (download failed) exit 1; nothing prints a traceback unless
TASKZOO_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from taskzoo import __version__
from taskzoo.errors import TaskzooError, UsageError


class _Parser(argparse.ArgumentParser):
    # arguments whose making imports much (the predictors' options) are added by this hook
    # when the parser is used, so `taskzoo list` or `taskzoo --help` stay quick
    before_parse: Callable[[argparse.ArgumentParser], None] | None = None

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self.before_parse is not None:
            hook, self.before_parse = self.before_parse, None
            hook(self)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> None:  # argparse exits 2 too; keep its usage line short
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The `taskzoo` parser: each subcommand's parser sets `handler`, the function it runs."""
    from taskzoo.cli import bench, chat, listing, play, predict, run, serve, weights

    p = _Parser(prog="taskzoo", description="Classic deep-learning applications, one API.")
    p.add_argument("--version", action="version", version=f"taskzoo {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (listing, run, predict, play, bench, chat, serve):
        module.add_parser(sub)
    weights.add_parsers(sub)
    return p


def program() -> int:
    """The `taskzoo` command as its own process: tune this process's allocator for CPU
    training (taskzoo.runtime.tune_allocator), then `main()`. Python callers use `main()`,
    which changes nothing process-wide."""
    from taskzoo.runtime import tune_allocator

    tune_allocator()
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come after options (`run sentiment --out d epochs=2`), which
    # argparse cannot interleave with a nargs="*" positional; collect them here instead.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command == "run" and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    debug = os.environ.get("TASKZOO_DEBUG", "") not in ("", "0")
    with warnings.catch_warnings():  # restored on return: main() may be called from Python
        if not debug:
            warnings.showwarning = _one_line_warning
        try:
            return dispatch(args, parser, debug)
        except BrokenPipeError:  # `taskzoo list | head`: the reader left; no traceback
            # Python would report the pipe again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141  # what shells report for SIGPIPE


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: object = None, line: str | None = None) -> None:
    """taskzoo's own warnings as one line, like its errors; others as Python prints them."""
    from taskzoo.errors import InitWarning

    if issubclass(category, InitWarning):
        print(f"taskzoo: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser, debug: bool) -> int:
    """Run the subcommand's handler; a taskzoo error becomes one line and an exit status."""
    try:
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return 2
        return handler(args)
    except UsageError as exc:
        if debug:
            raise
        print(f"taskzoo: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except TaskzooError as exc:
        if debug:
            raise
        print(f"taskzoo: error: {printable(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ntaskzoo: interrupted; `taskzoo run ... --out DIR --resume` continues from the "
              "last checkpoint", file=sys.stderr)
        return 130


def printable(text: str) -> str:
    """`text` with the bytes of a name that is not UTF-8 (an argument or file name, which
    Python holds as lone surrogates) shown as U+FFFD: a stderr that encodes strictly would
    otherwise fail on the very message that names the bad input."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
