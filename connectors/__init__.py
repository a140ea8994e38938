"""Connectors: read a SIS and yield canonical records; they never write anywhere."""
