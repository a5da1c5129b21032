"""Training: the Trainer (`trainer`), what it passes around (`types`), the optimisation recipe
(`optim`), the metrics log (`log`) and the checkpoint files (`checkpoints`)."""
