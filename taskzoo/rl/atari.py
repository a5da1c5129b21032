"""Atari through ale-py with the standard preprocessing (being written)."""

from __future__ import annotations

ENV_ID = "taskzoo/Atari-v0"


def register() -> None:
    """Register ENV_ID with gymnasium (called by envs once ale-py is found)."""
