"""Part-of-speech tags per word (UD English-EWT): char-CNN + BiLSTM/BiGRU taggers, MiniLM.

`task.py` registers the task; see docs/tasks/pos.md."""
