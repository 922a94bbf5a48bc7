"""Run folders (where a run writes, finding earlier runs) and the checks a resume must pass."""
