"""The ``pipeline`` command (typer) and ``python run.py --help``.

Import-light: nothing heavy is imported here."""


def __getattr__(name: str):  # ``pipeline.cli:app`` (installs made before the move) still finds the app
    if name == "app":
        from pipeline.cli.cli import app

        return app
    raise AttributeError(f"module 'pipeline.cli' has no attribute {name!r}")
