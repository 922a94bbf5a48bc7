class UserError(Exception):
    """Bad input (data, config, checkpoint) that one line can explain; `train.py` prints it and exits 2."""
