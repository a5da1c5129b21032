"""`taskzoo play`: greedy episodes of a finished RL run, optionally recorded."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    pl = sub.add_parser("play", help="watch a trained RL agent (and record it)",
                        description="Play greedy episodes of a finished RL run; optionally "
                                    "record them as an animated GIF or an MP4.")
    pl.add_argument("task", help="task name (checked against the run directory)")
    pl.add_argument("--from", dest="run_dir", required=True, help="run directory of `taskzoo run`")
    pl.add_argument("--episodes", type=int, default=3, help="episodes to play (default 3)")
    pl.add_argument("--record", metavar="FILE", help="write the episodes to FILE (.gif or .mp4)")
    pl.add_argument("--seed", type=int, default=0, help="episode i is seeded SEED+i (default 0)")
    pl.add_argument("--fps", type=float, help="playback speed, steps per second "
                                              "(default the environment's, i.e. real time)")
    pl.add_argument("--max-steps", type=int, help="cut episodes after this many steps")
    pl.set_defaults(handler=cmd_play)


def cmd_play(args: argparse.Namespace) -> int:
    from taskzoo.cli.run import check_run_task
    from taskzoo.rl.play import play

    check_run_task(args.task, args.run_dir)
    results = play(args.run_dir, episodes=args.episodes, record=args.record, seed=args.seed,
                   fps=args.fps, max_steps=args.max_steps)
    for i, res in enumerate(results, 1):
        print(f"episode {i}: return {res['return']:.1f}, {res['length']} steps")
    if args.record:
        print(f"wrote {args.record} ({sum(res['frames'] for res in results)} frames)")
    return 0
