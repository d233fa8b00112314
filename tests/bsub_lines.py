"""Read and check the ``#BSUB`` lines of a job script the way LSF 10.1's ``bsub < script`` reads them.

    parse_bsub_lines(Path("jobs/train.bsub").read_text(), "jobs/train.bsub")
    -> [(2, "-q", "gpua100"), (3, "-J", "bert-train"), ...]
    python tests/bsub_lines.py jobs/train.bsub      # check a script you edited: its options, or the error

The tests check the hand-written ``jobs/*.bsub`` (tests/test_jobs.py) and every script the launcher writes
for a preset (tests/lsf/test_script.py) with it; nothing in the package needs it at run time.

A ``#BSUB`` line holds bsub options exactly as on the command line (shell quoting, ``#`` starts a
comment). bsub stops reading them at the first command line of the script, so a ``#BSUB`` line below a
command is silently ignored by LSF: here it is an error. Unknown options, missing values and values LSF
rejects (``-n four``, ``-W 24h``, unbalanced ``-R`` brackets, an unknown ``-gpu`` key) raise
``BsubLineError`` naming the file and line.
"""

from __future__ import annotations

import difflib
import re
import shlex
import sys
from pathlib import Path

from pipeline.errors import PipelineError

#: bsub options that take a value (IBM Spectrum LSF 10.1 bsub reference)
VALUE_OPTIONS = frozenset({
    "-a", "-alloc_flags", "-app", "-ar", "-b", "-C", "-c", "-clusters", "-cn_cu", "-cn_mem", "-core_isolation",
    "-csm", "-cwd", "-D", "-data", "-datagrp", "-E", "-Ep", "-e", "-eo", "-env", "-eptl", "-ext", "-F", "-f",
    "-freq", "-G", "-g", "-gpu", "-hostfile", "-i", "-is", "-J", "-Jd", "-jsdl", "-jsdl_strict", "-jsm", "-k",
    "-L", "-Lp", "-ln_mem", "-ln_slots", "-M", "-m", "-mig", "-n", "-network", "-nnodes", "-notify", "-o",
    "-oo", "-outdir", "-P", "-p", "-pack", "-ptl", "-Q", "-q", "-R", "-rnc", "-S", "-s", "-sla", "-smt", "-sp",
    "-stage", "-step_cgroup", "-T", "-t", "-U", "-u", "-v", "-W", "-We", "-w", "-wa", "-wt",
})
#: bsub options that are flags
FLAG_OPTIONS = frozenset({
    "-B", "-H", "-I", "-Ip", "-IS", "-ISp", "-ISs", "-Is", "-IX", "-K", "-N", "-Ne", "-r", "-rn", "-x", "-ul",
    "-Zs", "-tty", "-hl", "-ti", "-datachk", "-XF",
})
#: options LSF accepts more than once (the others: the last one wins, which in a script is a mistake)
REPEATABLE = frozenset({"-R", "-f", "-data"})
GPU_KEYS = frozenset({"num", "mode", "mps", "j_exclusive", "aff", "block", "gpack", "gvendor", "gmodel", "gtile",
                      "gmem", "glink", "mig", "nvlink"})
SIGNALS = frozenset({"HUP", "INT", "QUIT", "KILL", "USR1", "USR2", "TERM", "ALRM", "CONT", "STOP", "TSTP",
                     "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "URG", "IO", "PWR"})

_TIME = re.compile(r"^(\d+:)?\d+$")  # [hours:]minutes
_MEM = re.compile(r"^\d+(\.\d+)?\s*([KMGTPE]B?)?$", re.I)


class BsubLineError(PipelineError, ValueError):
    """A ``#BSUB`` line bsub would reject or ignore; ``lineno`` is 1-based."""

    def __init__(self, source: str, lineno: int, message: str) -> None:
        super().__init__(f"{source}:{lineno}: {message}")
        self.source, self.lineno = source, lineno


def _check_value(option: str, value: str) -> str | None:
    """Why LSF would reject ``value`` for ``option`` (None: fine or not checked)."""
    v = value.strip()
    if not v:
        return f"{option} has an empty value"
    if option == "-n" and not re.fullmatch(r"\d+(,\d+)?", v):
        return f"-n {value!r}: give a number of slots (4) or min,max (2,8)"
    if option in ("-W", "-We") and not re.fullmatch(r"(\d+:)?\d+(/\S+)?", v):
        return f"{option} {value!r}: give [hours:]minutes, e.g. 24:00 or 90"
    if option == "-wt" and not _TIME.match(v):
        return f"-wt {value!r}: give [hours:]minutes before the run limit, e.g. 10"
    if option == "-wa":
        name = v.upper().removeprefix("SIG")
        if not (v.isdigit() or name in SIGNALS):
            return f"-wa {value!r}: give a signal name such as USR2"
    if option == "-M" and not _MEM.match(v):
        return f"-M {value!r}: give a memory limit such as 8GB or 8192"
    if option == "-R":
        if v.count("[") != v.count("]") or v.count("(") != v.count(")"):
            return f"-R {value!r}: unbalanced brackets"
        if re.search(r"mem\s*=\s*$|\[\s*\]", v):
            return f"-R {value!r}: an empty resource section"
    if option == "-gpu" and v != "-":
        for part in v.split(":"):
            key, eq, val = part.partition("=")
            if key not in GPU_KEYS or not eq or not val:
                return f"-gpu {value!r}: {part!r} is not key=value with key one of {', '.join(sorted(GPU_KEYS))}"
            if key == "num" and not re.fullmatch(r"\d+(/task|/host)?", val):
                return f"-gpu {value!r}: num={val} is not a number"
            if key == "mode" and val not in ("shared", "exclusive_process"):
                return f"-gpu {value!r}: mode={val} is not shared or exclusive_process"
    if option == "-J" and re.search(r"\s", v):
        return f"-J {value!r}: a job name has no spaces"
    return None


def parse_bsub_lines(text: str, source: str = "<script>") -> list[tuple[int, str, str | None]]:
    """``(line number, option, value)`` for every option of every ``#BSUB`` line; raises ``BsubLineError``."""
    out: list[tuple[int, str, str | None]] = []
    first_command: int | None = None
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if not s.startswith("#"):
            first_command = first_command or lineno
            continue
        if not (s.startswith("#BSUB") and (len(s) == 5 or s[5].isspace())):
            continue  # a comment
        if first_command is not None:
            raise BsubLineError(source, lineno, f"#BSUB below the first command (line {first_command}) is ignored "
                                                "by bsub: move it above every command")
        try:
            tokens = shlex.split(s[5:], comments=True)
        except ValueError as e:
            raise BsubLineError(source, lineno, f"cannot split {s!r} ({e}): check the quotes") from None
        if not tokens:
            raise BsubLineError(source, lineno, "#BSUB with no option")
        i = 0
        while i < len(tokens):
            option = tokens[i]
            if option in FLAG_OPTIONS:
                value = None
                i += 1
            elif option in VALUE_OPTIONS:
                if i + 1 >= len(tokens):
                    raise BsubLineError(source, lineno, f"{option} needs a value")
                value = tokens[i + 1]
                i += 2
                why = _check_value(option, value)
                if why:
                    raise BsubLineError(source, lineno, why)
            else:
                known = sorted(VALUE_OPTIONS | FLAG_OPTIONS)
                near = difflib.get_close_matches(option, known, n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                what = "a bsub option" if option.startswith("-") else "an option (the command goes below #BSUB)"
                raise BsubLineError(source, lineno, f"{option!r} is not {what} of LSF 10.1{hint}")
            if option in seen and option not in REPEATABLE:
                raise BsubLineError(source, lineno, f"{option} is given again (first on line {seen[option]}); "
                                                    "bsub keeps only the last one")
            seen.setdefault(option, lineno)
            out.append((lineno, option, value))
    return out


def main(argv: list[str]) -> int:
    """``python tests/bsub_lines.py SCRIPT...``: each script's options, or its first bad line (exit 1)."""
    for name in argv:
        try:
            options = parse_bsub_lines(Path(name).read_text(), name)
        except (OSError, BsubLineError) as e:
            print(e, file=sys.stderr)
            return 1
        print(f"{name}: " + " ".join(o if v is None else f"{o} {shlex.quote(v)}" for _, o, v in options))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
