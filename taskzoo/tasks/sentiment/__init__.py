"""Sentiment of a sentence (SST-2): RNN and TextCNN classifiers, fine-tuned MiniLM, distillation.

`task.py` registers the task; see docs/tasks/sentiment.md."""
