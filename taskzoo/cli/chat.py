"""`taskzoo chat`: a retrieval chatbot over a knowledge base, in the terminal."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    c = sub.add_parser("chat", help="answer questions from a knowledge base (retrieval chatbot)",
                       description="Ask questions in the terminal; each gets the best-matching "
                                   "entry of the knowledge base, or 'I don't know'.")
    c.add_argument("--kb", required=True, metavar="PATH",
                   help="a question,answer CSV (an FAQ) or a folder of .txt / .md files")
    c.add_argument("--threshold", type=float, default=0.4,
                   help="below this score the bot says it does not know (default 0.4)")
    c.add_argument("--rerank", action="store_true",
                   help="re-rank the best entries with the answer_selection cross-encoder")
    c.add_argument("--no-span", action="store_true",
                   help="show whole passages instead of the answer span the qa model cuts")
    c.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or mps")
    c.set_defaults(handler=cmd_chat)


def cmd_chat(args: argparse.Namespace) -> int:
    from taskzoo.apps.chat import chatbot, repl

    bot = chatbot(args.kb, threshold=args.threshold, rerank=args.rerank,
                  span=not args.no_span, device=args.device)
    return repl(bot)
