"""The pull-request pipeline's Python side: what the GitHub Actions workflows in
``.github/workflows/`` run (``leaderboard ci validate|score|publish``).

Everything GitHub-specific goes through :mod:`evaluator.ci.actions` (workflow commands, outputs,
summaries, the event payload) and :mod:`evaluator.ci.github` (the REST API); the rest is plain
logic that tests drive with a simulated Actions environment.
"""
