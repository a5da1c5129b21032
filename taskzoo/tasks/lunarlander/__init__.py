"""LunarLander-v3 landing with PPO, DQN or A2C (the shared ControlTask).

`task.py` registers the task; see docs/tasks/lunarlander.md."""
