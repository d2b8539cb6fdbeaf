"""Heron runner ``ray``: tuning on a Ray cluster."""
