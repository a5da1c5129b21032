"""Objects in images and videos (PennFudan, coco128, your data): FastestDet, yolo_tiny, tracking.

`task.py` registers the task; see docs/tasks/detection.md."""
