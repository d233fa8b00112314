"""The ``pipeline`` command (typer) and ``python run.py --help``.

Import-light: nothing heavy is imported here."""
