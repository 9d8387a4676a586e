"""Executors for common drivers. Each module imports its driver only when used."""
