"""Evaluator for open, verifiable computer-vision leaderboards.

The package validates submissions, recomputes their metrics against labels that never live in
the repository, and stores each evaluation as an immutable record the site renders.
"""

__version__ = "0.1.0"
