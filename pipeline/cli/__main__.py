"""``python -m pipeline.cli ...`` (what job scripts run): the ``pipeline`` command."""

from pipeline.cli.cli import app

app()
