"""Dataset specs, readers and batch sources shared by the tasks."""
