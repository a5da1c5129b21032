"""Artistic style transfer (see task.py)."""
