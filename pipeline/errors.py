"""User-facing errors: one line that says what is wrong and how to fix it.

``run.py`` and the CLI print ``PipelineError`` messages without a traceback (unless HYDRA_FULL_ERROR=1)
and exit non-zero.
"""

from __future__ import annotations


def first_line(text: object) -> str:
    """The first non-empty line of a message (of an exception, a scheduler's answer), stripped; "" if none."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


class PipelineError(Exception):
    """Bad input or environment; the message is the whole story."""


class DataError(PipelineError):
    pass


class ModelError(PipelineError):
    pass


class TrainingDiverged(PipelineError):
    pass


class SubmissionError(PipelineError):
    """The scheduler refused the sweep (or cannot be reached): nothing ran, so no job failed. The message
    says what the scheduler answered and what to change; ``run.py -m`` exits 2 with it."""
