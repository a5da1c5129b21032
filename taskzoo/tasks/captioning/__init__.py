"""A sentence for an image (Flickr8k): Show, Attend and Tell with beam search.

`task.py` registers the task; see docs/tasks/captioning.md."""
