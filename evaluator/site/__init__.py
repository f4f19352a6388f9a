"""The leaderboard website: collects records, entry metadata and published tables into board
views, renders them with Jinja into MkDocs sources, and builds the site with MkDocs."""
