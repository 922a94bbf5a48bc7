"""Optimizers and their schedules (LARS, parameter groups, warm-up and cosine), and weight averaging (EMA)."""
