"""SPEC §2 as functions over Arrow tables and NumPy arrays (no Ray: the pipeline maps them)."""
