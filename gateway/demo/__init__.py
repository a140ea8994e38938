"""The demo district: a generated SIS database, its schema, and the demo accounts."""
