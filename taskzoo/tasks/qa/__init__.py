"""Extractive question answering (SQuAD v1.1): a span head on a pretrained encoder.

`task.py` registers the task; see docs/tasks/qa.md."""
