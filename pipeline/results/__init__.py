"""Results: run directories -> tables (pandas), plots, the HTML report, baselines, the
terminal views and ``pipeline watch``.

Import-light: nothing heavy is imported here."""
