"""CartPole-v1 balancing with PPO, DQN or A2C (the shared ControlTask).

`task.py` registers the task; see docs/tasks/cartpole.md."""
