"""Reinforcement-learning support shared by the RL tasks: environments, BatchSources, reports."""
