"""Ingest: read landing files, map them onto the canonical schema, validate, clean and mask them."""
