"""What every layer may use: user errors, atomic writes, cross-process reductions."""
