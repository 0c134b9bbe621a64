"""Frozen data classes shared by every layer; no I/O here."""
