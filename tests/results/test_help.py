"""``pipeline --help`` reads well at 80 columns: whole command summaries, reflowed paragraphs, no <bool>."""

from __future__ import annotations

import inspect

from typer.testing import CliRunner

from pipeline.cli.cli import app

runner = CliRunner()


def test_command_list_is_not_cut():
    out = runner.invoke(app, ["--help"], env={"COLUMNS": "80"})
    assert out.exit_code == 0
    commands = out.stdout.split("Commands:", 1)[1].strip().splitlines()
    assert len(commands) >= 9
    for line in commands:
        assert not line.rstrip().endswith("..."), line  # a summary cut mid-sentence
        assert line.rstrip().endswith((".", ")")), line  # a whole sentence on its line
        assert len(line) <= 80


def test_flags_have_no_type_and_paragraphs_are_reflowed():
    for command in ("status", "results", "logs", "rerun"):
        out = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"})
        assert out.exit_code == 0, out.output
        assert "<bool>" not in out.stdout
        assert all(len(line) <= 80 for line in out.stdout.splitlines())
    out = runner.invoke(app, ["status", "--help"], env={"COLUMNS": "80"})
    doc = inspect.cleandoc(app.registered_commands[0].callback.__doc__)
    text = out.stdout.split("Arguments:")[0]
    paragraphs = [p for p in text.split("\n\n")[1:] if p.strip()]
    assert [" ".join(p.split()) for p in paragraphs] == [" ".join(p.split()) for p in doc.split("\n\n")]
    for p in paragraphs:  # reflowed: every line but a paragraph's last is filled (no short mid-sentence break)
        lines = p.splitlines()
        assert all(len(line) > 60 for line in lines[:-1]), p
