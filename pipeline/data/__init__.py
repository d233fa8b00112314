"""Data: load, clean, deduplicate, split, tokenise (cached), batch; the DVC prepare stage.

Import-light: nothing heavy is imported here."""
