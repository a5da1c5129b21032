"""Faces in photos and videos: find, align and name them against a gallery (Ultra-Light,
MTCNN, dlib's descriptor), no training.

`task.py` registers the task; see docs/tasks/faces.md."""
