"""Security primitives: key rings, field crypto, passwords, TOTP, the audit chain, the
read-only statement guard and database grants. They depend on no portal service."""
