"""Bundled baselines. Each one writes a ready submission folder that `leaderboard validate`
accepts as it is."""
