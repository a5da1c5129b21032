"""FrozenLake-v1 (slippery) by value iteration or Q-learning (the shared TabularTask).

`task.py` registers the task; see docs/tasks/frozenlake.md."""
