"""Image classes (Fashion-MNIST, MNIST, ORL faces, your folders) with the CNN/ResNet zoo.

`task.py` registers the task; see docs/tasks/image_classification.md."""
