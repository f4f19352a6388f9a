"""Checks that run on submissions before any label is read."""
