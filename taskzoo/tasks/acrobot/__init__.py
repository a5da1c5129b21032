"""Acrobot-v1 swing-up with PPO, DQN or A2C (the shared ControlTask).

`task.py` registers the task; see docs/tasks/acrobot.md."""
