"""What several tasks share: image tasks, pretrained text encoders, distillation, and the
gymnasium agents (control and tabular)."""
