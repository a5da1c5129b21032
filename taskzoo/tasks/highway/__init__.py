"""Driving on a highway (highway-env): DQN from the Kinematics observation, with the crash
rate and the speed beside the return.

`task.py` registers the task; see docs/tasks/highway.md."""
