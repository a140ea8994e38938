"""The replica's room: canonical records, the tables they land in, the sanitization
schema, column types and freshness. Nothing here knows about accounts or pages."""
