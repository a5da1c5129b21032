"""Rank a question's candidate sentences (WikiQA): cross- and bi-encoders.

`task.py` registers the task; see docs/tasks/answer_selection.md."""
