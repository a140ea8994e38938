"""Sync: validate, sanitize, diff and publish connector records into the replica."""
