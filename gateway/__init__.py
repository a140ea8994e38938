"""Core of the read-only SIS gateway: settings, models, engines, keys, access rules, audit."""
