"""Metric functions on arrays, independent of any benchmark's files (like sklearn.metrics)."""
