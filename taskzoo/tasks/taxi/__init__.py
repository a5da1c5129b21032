"""Taxi-v4 by value iteration or Q-learning (the shared TabularTask).

`task.py` registers the task; see docs/tasks/taxi.md."""
