"""The LSF job script, as pure functions: ``make_bsub_string`` (a job or a job array) and
``make_aggregate_bsub_string`` (the job that aggregates a sweep once its arrays have ended).

``make_bsub_string``'s keyword parameters are the list of valid executor parameters
(``default_parameters``); every value is checked before any script exists, and one LSF would reject or
misread is refused with one line (``LsfConfigError``) rather than passed on mangled. The queue's facts
(``max_timeout_min``, ``gpu_queue``, ``queue_gpus``, ``node_gpus``, ``node_mem_gb``) emit nothing: they
only refuse a job the queue cannot run.

Memory: ``mem_per_slot`` is LSF's ``rusage[mem=...]`` (per slot: LSF multiplies it by ``-n``);
``mem_limit`` is ``-M``, a size or ``auto``: the per-slot request plus ``MEM_LIMIT_MARGIN`` (docs/lsf.md).
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import shlex
import typing as tp
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.launch.submitit_lsf.bjobs import DIALECTS, file_stem, split_job_id

MEM_UNITS = ("suffix", "KB", "MB", "GB", "TB")
GPU_MODES = ("exclusive_process", "shared")
#: ``mem_limit: auto`` = the per-slot request x (1 + this): DTU pairs rusage[mem=...] with -M slightly
#: above it; this leaves room for short peaks (a checkpoint save, a batch of long texts) above the
#: reservation and still stops a job that keeps growing near what it asked for (docs/lsf.md)
MEM_LIMIT_MARGIN = 0.25
_MB_PER = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}
_MEM_RE = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_BARE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_QUEUE = re.compile(r"^[A-Za-z0-9_.-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: bsub flags accepted in ``additional_parameters`` (those the other parameters own are refused)
ADDITIONAL_FLAGS = frozenset({
    "B", "N", "u", "m", "G", "app", "U", "sla", "L", "b", "t", "E", "Ep", "x", "r", "rn", "k", "sp",
    "g", "Jd", "Lp", "c", "F", "D", "S", "v", "cwd", "outdir", "We", "hl", "ext", "a", "Ne", "rnc",
})
#: flags OpenLava and old LSF do not know (or misread: "-We" is read as "-W e")
LSF10_ONLY_FLAGS = frozenset({"cwd", "outdir", "We", "hl", "Ne", "rnc", "a", "ext"})


class LsfConfigError(PipelineError, ValueError):
    """A parameter LSF would reject, or that would submit a different job than the one asked for."""


# ------------------------------------------------------------------------------------------------ values


def parse_mem_mb(value: tp.Any, key: str) -> int:
    """``"16GB"``, ``"16G"``, ``"512MB"``, ``"1.5 GiB"`` or a number of MB -> MB (rounded up)."""
    if isinstance(value, bool):
        raise LsfConfigError(f"{key}={value!r}: not a memory size")
    if isinstance(value, (int, float)):
        mb = float(value)
    else:
        m = _MEM_RE.match(str(value))
        if m is None:
            raise LsfConfigError(f"{key}={value!r}: not a memory size; write a number of MB or e.g. '16GB', '512MB'")
        mb = float(m.group("num")) * _MB_PER[m.group("unit").upper()]
    if mb <= 0 or math.isnan(mb):
        raise LsfConfigError(f"{key}={value!r}: memory must be positive")
    return math.ceil(mb)


def format_mem(mb: int, unit: str) -> str:
    """MB -> what LSF reads: ``"16GB"`` (unit ``suffix``) or a plain integer in ``LSF_UNIT_FOR_LIMITS``."""
    if unit == "suffix":
        return f"{mb // 1024}GB" if mb % 1024 == 0 else f"{mb}MB"
    return str(math.ceil(mb / _MB_PER[unit[0]])) if unit != "KB" else str(mb * 1024)


def format_walltime(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def resolve_mem_limit(mem_limit: tp.Any, per_slot_mb: int | None) -> int | None:
    """``-M`` in MB: a size as given, ``auto`` = the per-slot request + ``MEM_LIMIT_MARGIN`` (none without
    a request), None = no limit. A limit below the request is refused: LSF would kill the job inside
    the memory it reserved."""
    if mem_limit is None:
        return None
    if str(mem_limit).strip().lower() == "auto":
        return None if per_slot_mb is None else math.ceil(per_slot_mb * (1 + MEM_LIMIT_MARGIN))
    mb = parse_mem_mb(mem_limit, "mem_limit")
    if per_slot_mb is not None and mb < per_slot_mb:
        raise LsfConfigError(f"mem_limit={mem_limit} is below the request of {format_mem(per_slot_mb, 'suffix')} per "
                             f"slot (mem_per_slot): raise it, or set auto (the request + {MEM_LIMIT_MARGIN:.0%})")
    return mb


def _int(key: str, value: tp.Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LsfConfigError(f"{key}={value!r}: expected an integer >= {minimum}")
    return value


def _optional_int(key: str, value: tp.Any) -> int | None:
    return None if value is None else _int(key, value, 1)


def _bsub_value(key: str, value: tp.Any, quote: bool = False) -> str:
    """A #BSUB option value: bare when safe (unless ``quote``), else in double quotes; characters LSF
    cannot read there (double quote, backslash, newline) are refused rather than passed on mangled."""
    text = str(value)
    bad = next((c for c in text if c in '"\\\n\r\0'), None)
    if bad is not None or not text:
        raise LsfConfigError(f"{key}={text!r}: LSF cannot take {bad!r} in a #BSUB line" if bad else
                             f"{key}: empty value")
    return text if _BARE.match(text) and not quote else f'"{text}"'


def _path_pattern(folder: str, kind: str, resubmit_of: str | None) -> str:
    """submitit's folder placeholders (%j, %t, %A, %a) in LSF's terms (%J job, %I array index)."""
    if resubmit_of is not None:
        base, index = split_job_id(resubmit_of)
        subs = {"%j": file_stem(resubmit_of), "%A": base, "%a": str(index or 0), "%t": "0"}
    elif kind == "array":
        subs = {"%j": "%J_%I", "%A": "%J", "%a": "%I", "%t": "0"}
    else:
        subs = {"%j": "%J", "%A": "%J", "%a": "0", "%t": "0"}
    return re.sub(r"%[jtAa]", lambda m: subs[m.group(0)], folder)


def _shell_path(pattern: str) -> str:
    """An LSF path pattern as a shell word: %J/%I become $LSB_JOBID/$LSB_JOBINDEX, the rest is quoted."""
    parts = re.split(r"(%J|%I)", pattern)
    out = []
    for part in parts:
        if part == "%J":
            out.append('"${LSB_JOBID}"')
        elif part == "%I":
            out.append('"${LSB_JOBINDEX}"')
        elif part:
            out.append(shlex.quote(part))
    return "".join(out)


def _exports(env: tp.Mapping[str, tp.Any] | None) -> list[str]:
    """``export NAME='value'`` lines (values shell-quoted); a name the shell cannot take is refused."""
    lines = []
    for key, value in (env or {}).items():
        if not _ENV_NAME.match(str(key)):
            raise LsfConfigError(f"env: {key!r} is not an environment variable name")
        lines.append(f"export {key}={shlex.quote(str(value))}")
    return lines


# ------------------------------------------------------------------------------------------------ checks


def _check_dialect(dialect: str, mem_unit: str, gpu_mode: str) -> None:
    if dialect not in DIALECTS:
        raise LsfConfigError(f"dialect={dialect!r}: valid dialects are {', '.join(DIALECTS)}")
    if mem_unit not in MEM_UNITS:
        raise LsfConfigError(f"mem_unit={mem_unit!r}: valid units are {', '.join(MEM_UNITS)}")
    if dialect == "openlava" and mem_unit == "suffix":
        raise LsfConfigError("mem_unit='suffix': the openlava dialect reads plain numbers only; "
                             "set mem_unit to the cluster's LSF_UNIT_FOR_LIMITS (KB, MB, ...)")
    if gpu_mode not in GPU_MODES:
        raise LsfConfigError(f"gpu_mode={gpu_mode!r}: valid modes are {', '.join(GPU_MODES)}")


def _check_queue_limits(*, queue: str | None, dialect: str, timeout_min: int, max_timeout_min: int | None,
                        gpus: int, gpu_queue: bool | None, warning_time_min: int | None) -> None:
    """The run limit, GPUs on a CPU queue, and what the openlava dialect cannot say."""
    if max_timeout_min is not None and timeout_min > max_timeout_min:
        raise LsfConfigError(
            f"timeout_min={timeout_min} is above the {max_timeout_min}-minute limit of queue {queue}: ask for "
            f"at most {max_timeout_min} (hydra.launcher.timeout_min) or pick another queue")
    if gpus > 0 and gpu_queue is False:
        raise LsfConfigError(
            f"gpus_per_node={gpus} on queue {queue}, a CPU queue: use a GPU preset (e.g. cluster=dtu_gpua100) "
            "or hydra.launcher.gpus_per_node=0")
    if gpus > 0 and dialect == "openlava":
        raise LsfConfigError(f"gpus_per_node={gpus}: the openlava dialect has no -gpu option; request GPUs "
                             "through hydra.launcher.resources (e.g. rusage[ngpus=1]) and set gpus_per_node=0")
    if warning_time_min is not None:
        if dialect == "openlava":
            raise LsfConfigError("warning_time_min: the openlava dialect has no -wa/-wt (it would read -wt 5 as "
                                 "a dependency on job 't'); LSF sends USR2 at the run limit anyway")
        if not 0 < _int("warning_time_min", warning_time_min, 1) < timeout_min:
            raise LsfConfigError(f"warning_time_min={warning_time_min}: must be below timeout_min={timeout_min}")


def _per_slot_mb(mem_gb: float | None, mem_per_slot: tp.Any, cores: int) -> int | None:
    """Memory per slot in MB, from ``mem_per_slot`` or from ``mem_gb`` (the job's total)."""
    if mem_gb is not None and mem_per_slot is not None:
        raise LsfConfigError("mem_gb and mem_per_slot are both set: give one (mem_gb is the job's total)")
    if mem_per_slot is not None:
        return parse_mem_mb(mem_per_slot, "mem_per_slot")
    if mem_gb is not None:
        return math.ceil(parse_mem_mb(f"{mem_gb}GB", "mem_gb") / cores)
    return None


def _check_fits_node(*, queue: str | None, gpus: int, cores: int, per_slot_mb: int | None,
                     queue_gpus: int | None, node_gpus: int | None, node_mem_gb: int | None) -> None:
    """A job needs one host (span[hosts=1]): more GPUs or memory than a node of the queue has would pend
    forever, so it is refused before submission."""
    where = f"queue {queue}" if queue else "the queue"
    if node_gpus is not None and gpus > node_gpus:
        raise LsfConfigError(f"gpus_per_node={gpus}: a node of {where} has {node_gpus} GPUs (node_gpus): ask for "
                             f"at most {node_gpus} (hydra.launcher.gpus_per_node) or pick another queue")
    if queue_gpus is not None and gpus > queue_gpus:
        raise LsfConfigError(f"gpus_per_node={gpus}: {where} has {queue_gpus} GPUs in all (queue_gpus): ask for "
                             f"at most {queue_gpus} (hydra.launcher.gpus_per_node) or pick another queue")
    if node_mem_gb is not None and per_slot_mb is not None and per_slot_mb * cores > node_mem_gb * 1024:
        total = format_mem(per_slot_mb * cores, "suffix")
        raise LsfConfigError(
            f"the job asks for {cores} x {format_mem(per_slot_mb, 'suffix')} = {total} of host memory; a node of "
            f"{where} has {node_mem_gb}GB (node_mem_gb): lower hydra.launcher.mem_per_slot or cpus_per_task")


# ------------------------------------------------------------------------------------------------ options


def _resources(*, cores: int, gpus: int, gpu_mode: str, mem_per_slot_mb: int | None, mem_unit: str,
               mem_limit_mb: int | None, select: str | None, span_hosts: int | None, resources: str | None,
               queue: str | None, project: str | None, timeout_min: int) -> list[tuple[str, str]]:
    """The resource options shared by job scripts and the aggregation script, in emission order."""
    opts: list[tuple[str, str]] = []
    if queue is not None:
        if not _QUEUE.match(str(queue)):
            raise LsfConfigError(f"queue={queue!r}: not a queue name")
        opts.append(("q", str(queue)))
    if project is not None:
        opts.append(("P", _bsub_value("project", project)))
    opts.append(("n", str(cores)))
    if gpus > 0:
        opts.append(("gpu", _bsub_value("gpu", f"num={gpus}:mode={gpu_mode}", quote=True)))
    sections = []
    if mem_per_slot_mb is not None:
        sections.append(f"rusage[mem={format_mem(mem_per_slot_mb, mem_unit)}]")
    if span_hosts is not None:
        sections.append(f"span[hosts={span_hosts}]")
    if select:
        sections.append(select if select.startswith("select[") else f"select[{select}]")
    if resources:
        sections.append(str(resources))
    if sections:
        opts.append(("R", _bsub_value("resources", " ".join(sections), quote=True)))
    if mem_limit_mb is not None:
        opts.append(("M", format_mem(mem_limit_mb, mem_unit)))
    opts.append(("W", format_walltime(timeout_min)))
    return opts


def _additional_options(additional_parameters: tp.Mapping[str, tp.Any] | None,
                        dialect: str) -> list[tuple[str, str]]:
    """``additional_parameters`` as #BSUB options: known flags only, and only those the dialect reads."""
    opts = []
    for key, value in (additional_parameters or {}).items():
        flag = str(key).lstrip("-")
        if flag not in ADDITIONAL_FLAGS:
            raise LsfConfigError(
                f"additional_parameters: unknown or reserved bsub flag -{flag}; accepted: "
                f"{', '.join(sorted(ADDITIONAL_FLAGS))} (queue, cores, memory, time, logs have their own keys)")
        if dialect == "openlava" and flag in LSF10_ONLY_FLAGS:
            raise LsfConfigError(f"additional_parameters: -{flag} is not understood by the openlava dialect")
        if value is False or value is None:
            continue
        opts.append((flag, "" if value is True else _bsub_value(f"additional_parameters.{flag}", value)))
    return opts


@functools.lru_cache
def default_parameters() -> dict[str, tp.Any]:
    """Parameters that can be set through update_parameters, with their defaults."""
    specs = inspect.getfullargspec(make_bsub_string)
    defaults = dict(zip(specs.kwonlyargs, [specs.kwonlydefaults[k] for k in specs.kwonlyargs]))  # type: ignore[index]
    return {k: v for k, v in defaults.items() if k not in {"map_count", "resubmit_of"}}


# ------------------------------------------------------------------------------------------------ scripts


# pylint: disable=too-many-arguments,too-many-locals
def make_bsub_string(
    command: str,
    folder: str | Path,
    *,
    job_name: str = "submitit",
    queue: str | None = None,
    project: str | None = None,
    dialect: str = "lsf10",
    timeout_min: int = 60,
    max_timeout_min: int | None = None,
    cores: int = 1,
    gpus: int = 0,
    gpu_mode: str = "exclusive_process",
    gpu_queue: bool | None = None,
    queue_gpus: int | None = None,
    node_gpus: int | None = None,
    node_mem_gb: int | None = None,
    mem_gb: float | None = None,
    mem_per_slot: str | int | None = None,
    mem_unit: str = "MB",
    mem_limit: str | int | None = None,
    select: str | None = None,
    span_hosts: int | None = 1,
    resources: str | None = None,
    warning_time_min: int | None = None,
    warning_signal: str = "USR2",
    nodes: int = 1,
    tasks_per_node: int = 1,
    stderr_to_stdout: bool = False,
    array_parallelism: int = 256,
    max_array_size: int = 1000,
    setup: tp.Sequence[str] | None = None,
    env: tp.Mapping[str, tp.Any] | None = None,
    additional_parameters: tp.Mapping[str, tp.Any] | None = None,
    map_count: int | None = None,
    resubmit_of: str | None = None,
) -> str:
    """The bsub job script (read by ``bsub < script``) that runs ``command``.

    Parameters (bsub option in brackets)
    ----------
    job_name [-J]: job name; characters other than letters, digits, ``_ . -`` become ``_``
    queue [-q], project [-P]: queue and project (None: LSF's defaults)
    dialect: ``lsf10`` (IBM Spectrum LSF 10) or ``openlava`` (no -gpu, -wa/-wt, memory units)
    timeout_min [-W H:MM]: run limit; max_timeout_min: the queue's limit, checked here
    cores [-n]: job slots (CPU cores), all on one host with span_hosts=1 [-R span[hosts=1]]
    gpus [-gpu "num=G:mode=M"]: GPUs, only emitted when > 0; gpu_mode: exclusive_process or shared;
        gpu_queue: False refuses GPUs (a CPU queue), True/None accept them
    queue_gpus, node_gpus, node_mem_gb: the queue's GPUs in all, GPUs and host memory (GB) of one of its
        nodes (None: unknown); a job that cannot fit is refused
    mem_per_slot [-R rusage[mem=...]]: memory per slot, "16GB"/"512MB" or a number of MB; or mem_gb,
        the job's total, split evenly over the slots
    mem_unit: how memory is written: "suffix" ("16GB", LSF 10) or a plain integer in KB/MB/GB/TB, the
        cluster's LSF_UNIT_FOR_LIMITS (LSF's default is KB, many sites set MB)
    mem_limit [-M]: hard memory limit (same forms as mem_per_slot), or "auto": the per-slot request
        plus MEM_LIMIT_MARGIN
    select [-R select[...]], resources: more sections of the one -R string (e.g. "gpu80gb")
    warning_time_min, warning_signal [-wa SIG -wt MIN]: early warning before the run limit (LSF 10 only;
        without it LSF sends USR2 at the limit and kills 10 minutes later)
    nodes, tasks_per_node: must be 1 (one process per job)
    stderr_to_stdout: one log file (no -e)
    array_parallelism [-J "name[1-N]%P"]: array elements running at once; max_array_size: the
        cluster's MAX_JOB_ARRAY_SIZE, bigger batches are split into several arrays
    setup: shell lines run before the command (module load, conda activate), verbatim
    env: environment variables exported before the command (values shell-quoted)
    additional_parameters: more bsub flags ({"B": True, "u": "me@dtu.dk"}), known flags only
    """
    _check_dialect(dialect, mem_unit, gpu_mode)
    timeout_min = _int("timeout_min", timeout_min, 1)
    cores = _int("cores (cpus_per_task)", cores, 1)
    gpus = _int("gpus (gpus_per_node)", gpus or 0, 0)
    if _int("nodes", nodes, 1) != 1 or _int("tasks_per_node", tasks_per_node, 1) != 1:
        raise LsfConfigError(f"nodes={nodes}, tasks_per_node={tasks_per_node}: the LSF executor runs one "
                             "process per job; use cores (cpus_per_task) and gpus for a bigger job")
    _check_queue_limits(queue=queue, dialect=dialect, timeout_min=timeout_min, max_timeout_min=max_timeout_min,
                        gpus=gpus, gpu_queue=gpu_queue, warning_time_min=warning_time_min)
    per_slot_mb = _per_slot_mb(mem_gb, mem_per_slot, cores)
    _check_fits_node(queue=queue, gpus=gpus, cores=cores, per_slot_mb=per_slot_mb,
                     queue_gpus=_optional_int("queue_gpus", queue_gpus),
                     node_gpus=_optional_int("node_gpus", node_gpus),
                     node_mem_gb=_optional_int("node_mem_gb", node_mem_gb))
    if span_hosts is not None:
        span_hosts = _int("span_hosts", span_hosts, 1)
    _int("array_parallelism", array_parallelism, 1)
    _int("max_array_size", max_array_size, 1)
    if map_count is not None and not 1 <= map_count <= max_array_size:
        raise LsfConfigError(f"an array of {map_count} jobs: arrays hold 1 to max_array_size={max_array_size}")

    name = _NAME_BAD.sub("_", str(job_name)) or "submitit"
    kind = "array" if map_count is not None else "job"
    if map_count is not None:
        opts = [("J", _bsub_value("job_name", f"{name}[1-{map_count}]%{min(array_parallelism, map_count)}"))]
    else:
        opts = [("J", name)]
    opts += _resources(cores=cores, gpus=gpus, gpu_mode=gpu_mode, mem_per_slot_mb=per_slot_mb, mem_unit=mem_unit,
                       mem_limit_mb=resolve_mem_limit(mem_limit, per_slot_mb), select=select, span_hosts=span_hosts,
                       resources=resources, queue=queue, project=project, timeout_min=timeout_min)
    if warning_time_min is not None:
        if not re.match(r"^[A-Z0-9]+$", str(warning_signal)):
            raise LsfConfigError(f"warning_signal={warning_signal!r}: a signal name like USR2")
        opts += [("wa", str(warning_signal)), ("wt", str(warning_time_min))]

    folder_pattern = _path_pattern(str(folder), kind, resubmit_of)
    stem = file_stem(resubmit_of) if resubmit_of is not None else ("%J_%I" if kind == "array" else "%J")
    opts.append(("o", _bsub_value("folder", f"{folder_pattern}/{stem}_0_log.out")))
    if not stderr_to_stdout:
        opts.append(("e", _bsub_value("folder", f"{folder_pattern}/{stem}_0_log.err")))
    opts += _additional_options(additional_parameters, dialect)
    return _job_script(opts, f"{folder_pattern}/{stem}_0_log", stderr_to_stdout, setup, env, resubmit_of, command)


def _job_script(opts: list[tuple[str, str]], log_stem: str, stderr_to_stdout: bool,
                setup: tp.Sequence[str] | None, env: tp.Mapping[str, tp.Any] | None, resubmit_of: str | None,
                command: str) -> str:
    """The script's text: the #BSUB lines, the log redirection, setup, exports, then ``exec command``."""
    lines = ["#!/bin/bash", ""]
    lines += [f"#BSUB -{k} {v}".rstrip() for k, v in opts]
    lines += [
        "",
        "# the job's output goes straight to its log files (LSF would hold -o/-e back until the job ends)",
        f"SUBMITIT_LOG={_shell_path(log_stem)}",
        'exec >>"$SUBMITIT_LOG.out" ' + ("2>&1" if stderr_to_stdout else '2>>"$SUBMITIT_LOG.err"'),
    ]
    if setup:
        lines += ["", "# setup"] + [str(x) for x in setup]
    lines += ["", "# command", "export SUBMITIT_EXECUTOR=lsf"]
    if resubmit_of is not None:
        lines.append(f"export SUBMITIT_LSF_JOB_ID={shlex.quote(resubmit_of)}")
    lines += _exports(env)
    # exec: Python must be the job's top process. LSF signals the whole job (the warning USR2, the kill
    # sequence); a shell in between would die of USR2 and LSF would then kill Python mid-checkpoint.
    lines += [f"exec {command}", ""]
    return "\n".join(lines)


def make_aggregate_bsub_string(
    command: str,
    log_dir: str | Path,
    *,
    depends_on: tp.Sequence[str],
    job_name: str = "aggregate",
    queue: str | None = None,
    project: str | None = None,
    dialect: str = "lsf10",
    timeout_min: int = 30,
    cores: int = 1,
    mem_per_slot: str | int | None = "4GB",
    mem_unit: str = "MB",
    setup: tp.Sequence[str] | None = None,
    env: tp.Mapping[str, tp.Any] | None = None,
) -> str:
    """The script of the small job that runs ``command`` once every job of ``depends_on`` has ended
    (``-w "ended(ID1) && ended(ID2)"``: done or failed, so a partial sweep is still aggregated); its
    output goes to ``<log_dir>/aggregate_%J.out``."""
    if dialect not in DIALECTS:
        raise LsfConfigError(f"dialect={dialect!r}: valid dialects are {', '.join(DIALECTS)}")
    if mem_unit not in MEM_UNITS or (dialect == "openlava" and mem_unit == "suffix"):
        raise LsfConfigError(f"mem_unit={mem_unit!r}: not usable with the {dialect} dialect")
    if not depends_on:
        raise LsfConfigError("the aggregation job needs at least one job to wait for")
    condition = " && ".join(f"ended({split_job_id(j)[0]})" for j in dict.fromkeys(depends_on))
    name = _NAME_BAD.sub("_", str(job_name)) or "aggregate"
    opts = [("J", name)]
    opts += _resources(cores=_int("cores", cores, 1), gpus=0, gpu_mode="shared",
                       mem_per_slot_mb=None if mem_per_slot is None else parse_mem_mb(mem_per_slot, "mem_per_slot"),
                       mem_unit=mem_unit, mem_limit_mb=None, select=None, span_hosts=1, resources=None,
                       queue=queue, project=project, timeout_min=_int("timeout_min", timeout_min, 1))
    log = f"{log_dir}/aggregate_%J.out"
    opts += [("w", _bsub_value("depends_on", condition, quote=True)), ("o", _bsub_value("log_dir", log))]
    lines = ["#!/bin/bash", ""] + [f"#BSUB -{k} {v}" for k, v in opts]
    lines += ["", f"exec >>{_shell_path(log)} 2>&1  # straight to the log (LSF would hold -o back)"]
    if setup:
        lines += ["", "# setup"] + [str(x) for x in setup]
    lines += ["", "# command"] + _exports(env) + [command, ""]
    return "\n".join(lines)
