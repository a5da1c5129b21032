"""Autoencoders: reconstruct, denoise, VAE, colorize photos; codes against PCA.

`task.py` registers the task; see docs/tasks/autoencoder.md."""
