"""What train.py sets up around a stage: the trainer and its callbacks, startup checks, DDP ranks."""
