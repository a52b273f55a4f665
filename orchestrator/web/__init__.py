"""``h2ot serve``: the read-only web leaderboard (Starlette, Jinja2 templates, plotly.js served by the app)."""
