"""Extractive summarization (BBC News): a BiGRU sentence scorer over encoder embeddings.

`task.py` registers the task; see docs/tasks/summarization.md."""
