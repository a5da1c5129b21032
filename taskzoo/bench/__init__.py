"""Benchmarks: every task's quality and speed in one table (`tasks`), and taskzoo beside
the libraries a user would otherwise use (`peers`)."""
