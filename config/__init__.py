"""Data, not code: the example configuration, the default sanitization policy and the
SQL mapping files, installed as ``gateway.config`` and read through importlib.resources."""
