"""A fake IBM Spectrum LSF 10.1 for tests: bsub, bjobs, bkill, bpeek, brequeue, bqueues, bstop, bresume.

Jobs run as local background processes. All state lives in ``$FAKE_LSF_DIR`` (one JSON file guarded by
an fcntl lock), so every command is a short-lived process, exactly like the real client commands. Each
submission gets a detached *supervisor* process (the fake's sbatchd) that waits for dependencies,
enforces the array slot limit ``%P`` and the run limit, launches the elements, delivers signals that
bkill/brequeue/bstop/bresume queued, writes the ``-o``/``-e`` files at job end and exits once every
element has finished.

Standard library only; it must run under whatever ``python3`` is first on PATH. See README.md next to
this file for what is faithful to LSF and what is simplified.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import getpass
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
FIRST_JOB_ID = 1001
CLUSTER = "fakecluster"
LSF_VERSION = "IBM Spectrum LSF Standard 10.1.0.13, Mar 10 2022 (fake)"
OPENLAVA_VERSION = "openlava project 4.0.0, Jun 7 2016 (fake)"

FINISHED = ("DONE", "EXIT")
SUSPENDED = ("PSUSP", "USUSP", "SSUSP")
ACTIVE = ("RUN", "USUSP", "SSUSP")

# ----------------------------------------------------------------------------------------------------
# configuration


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        return default


def seconds_per_minute() -> float:
    return _env_float("FAKE_LSF_SECONDS_PER_MINUTE", 60.0)


def kill_grace() -> float:
    """Seconds between SIGUSR2 at the run limit and SIGKILL (LSF: ten minutes)."""
    return _env_float("FAKE_LSF_KILL_GRACE", 10.0 * seconds_per_minute())


def terminate_interval() -> float:
    """Seconds between the steps of the bkill sequence SIGINT, SIGTERM, SIGKILL (LSF: 10 s)."""
    return _env_float("FAKE_LSF_TERMINATE_INTERVAL", 10.0 * seconds_per_minute() / 60.0)


def poll_interval() -> float:
    return max(0.02, _env_float("FAKE_LSF_POLL", 0.2))


def forget_after() -> float:
    return _env_float("FAKE_LSF_FORGET_AFTER", 3600.0)


def max_array_size() -> int:
    return int(_env_float("FAKE_LSF_MAX_JOB_ARRAY_SIZE", 1000))


def default_queue() -> str:
    return os.environ.get("FAKE_LSF_DEFAULT_QUEUE", "").strip() or "normal"


def allowed_queues() -> list[str] | None:
    raw = os.environ.get("FAKE_LSF_QUEUES", "").strip()
    if not raw:
        return None
    return [q.strip() for q in raw.split(",") if q.strip()]


def state_dir() -> str:
    d = os.environ.get("FAKE_LSF_DIR", "").strip()
    if not d:
        sys.stderr.write("fake LSF: FAKE_LSF_DIR is not set. LSF is down.\n")
        sys.exit(255)
    os.makedirs(d, exist_ok=True)
    return d


def dialect() -> str:
    name = os.environ.get("FAKE_LSF_DIALECT", "").strip().lower()
    if not name:
        try:
            with open(os.path.join(state_dir(), "dialect")) as fh:
                name = fh.read().strip().lower()
        except OSError:
            name = ""
    if name in ("openlava", "old", "lsf9"):
        return "openlava"
    return "lsf10"


def hostname() -> str:
    return os.environ.get("FAKE_LSF_HOST", "").strip() or socket.gethostname().split(".")[0] or "localhost"


def username() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return str(os.getuid())


# ----------------------------------------------------------------------------------------------------
# state store


class Store:
    """``state.json`` in the state dir, read and written under an exclusive flock on ``lock``."""

    def __init__(self, directory: str):
        self.dir = directory
        self.path = os.path.join(directory, "state.json")
        self.lockpath = os.path.join(directory, "lock")
        self.last_signature = None

    def signature(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> tuple[dict, str]:
        try:
            with open(self.path) as fh:
                raw = fh.read()
            return json.loads(raw), raw
        except (OSError, ValueError):
            return {"next_id": FIRST_JOB_ID, "jobs": {}}, ""

    @contextlib.contextmanager
    def locked(self, write: bool = True):
        fd = os.open(self.lockpath, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            state, raw = self._load()
            yield state
            if write:
                new = json.dumps(state, sort_keys=True)
                if new != raw:
                    tmp = f"{self.path}.{os.getpid()}.tmp"
                    with open(tmp, "w") as fh:
                        fh.write(new)
                    os.replace(tmp, self.path)
                self.last_signature = self.signature()  # taken under the lock: no write can slip in
        finally:
            os.close(fd)

    def read(self) -> dict:
        with self.locked(write=False) as st:
            return st


def spool_dir(jobid) -> str:
    d = os.path.join(state_dir(), "spool", str(jobid))
    os.makedirs(d, exist_ok=True)
    return d


def log_call(cmd: str, argv: list[str]) -> None:
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = None
    rec = {"cmd": cmd, "argv": list(argv), "time": time.time(), "pid": os.getpid(), "cwd": cwd}
    line = json.dumps(rec) + "\n"
    fd = os.open(os.path.join(state_dir(), "calls.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def injected_failure(cmd: str) -> bool:
    """Transient failure injection: ``FAKE_LSF_<CMD>_FAIL=N`` makes the next N calls of <cmd> fail.

    Each distinct value of the variable arms the counter once; the helper may also write the counter
    file ``<cmd>_fail`` directly.
    """
    d = state_dir()
    counter = os.path.join(d, f"{cmd}_fail")
    armed = os.path.join(d, f"{cmd}_fail_armed")
    raw = os.environ.get(f"FAKE_LSF_{cmd.upper()}_FAIL", "").strip()
    fd = os.open(os.path.join(d, "fail.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if raw:
            try:
                with open(armed) as fh:
                    seen = fh.read().strip()
            except OSError:
                seen = None
            if seen != raw:
                with open(armed, "w") as fh:
                    fh.write(raw)
                with open(counter, "w") as fh:
                    fh.write(str(int(float(raw))))
        try:
            with open(counter) as fh:
                remaining = int(fh.read().strip() or 0)
        except (OSError, ValueError):
            remaining = 0
        if remaining <= 0:
            return False
        with open(counter, "w") as fh:
            fh.write(str(remaining - 1))
        return True
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------------
# small helpers


def _ctime(t: float | None) -> str:
    return time.ctime(t) if t else ""


def _short_time(t: float | None) -> str:
    if not t:
        return ""
    return time.strftime("%b %e %H:%M", time.localtime(t))


SIGNAL_NAMES = {
    name[3:]: int(getattr(signal, name))
    for name in dir(signal)
    if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(getattr(signal, name), int)
}


def parse_signal(text: str) -> int | None:
    t = str(text).strip().upper()
    if t.isdigit():
        return int(t)
    if t.startswith("SIG"):
        t = t[3:]
    return SIGNAL_NAMES.get(t)


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name[3:]
    except ValueError:
        return str(num)


def parse_minutes(text: str) -> float | None:
    """LSF ``[hour:]minute`` (also ``hour:minute:second``); returns minutes."""
    t = str(text).strip().split("/")[0]
    parts = t.split(":")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        return None
    if any(n < 0 for n in nums) or not parts or len(parts) > 3:
        return None
    if len(nums) == 1:
        return nums[0]
    if len(nums) == 2:
        return nums[0] * 60 + nums[1]
    return nums[0] * 60 + nums[1] + nums[2] / 60.0


def format_minutes(m: float) -> str:
    return f"{m:.1f}"


def _alive(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _killpg(pgid, sig: int) -> None:
    if not pgid:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(int(pgid), sig)


def parse_index_list(spec: str) -> list[int] | None:
    """``1-10:2,15,20-22`` -> sorted unique indices; None when malformed."""
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if not m:
            return None
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else start
        step = int(m.group(3)) if m.group(3) else 1
        if start < 1 or end < start or step < 1:
            return None
        out.update(range(start, end + 1, step))
    return sorted(out)


def job_base_name(job: dict) -> str:
    return job["base_name"]


def element_name(job: dict, idx: int) -> str:
    if job["array"]:
        return f"{job['base_name']}[{idx}]"
    return job["name"]


def element_label(job: dict, idx: int) -> str:
    return f"{job['id']}[{idx}]" if job["array"] else str(job["id"])


def visible(job: dict, now: float | None = None) -> bool:
    """False once every element finished more than FAKE_LSF_FORGET_AFTER seconds ago (CLEAN_PERIOD)."""
    now = now or time.time()
    finishes = []
    for el in job["elements"].values():
        if el["stat"] not in FINISHED:
            return True
        finishes.append(el.get("finish") or 0)
    return not finishes or now - max(finishes) <= forget_after()


def display_stat(job: dict, el: dict) -> str:
    stat = el["stat"]
    if stat in ACTIVE and not _alive(job.get("supervisor_pid")):
        return "UNKWN"  # the fake sbatchd is gone: LSF shows UNKWN when it loses contact
    return stat


def usage_exit(cmd: str, msg: str, usage: str) -> int:
    sys.stderr.write(f"{msg}\n{usage}\n")
    return 255


# ----------------------------------------------------------------------------------------------------
# job references: "1001", "1001[3]", "1001[1-3,5]"

JOBREF_RE = re.compile(r"^\s*(\d+)\s*(?:\[([^\]]*)\])?\s*$")


def resolve_ref(state: dict, ref: str, now: float | None = None):
    """Returns (job, [indices], label) or (None, None, label) when not found."""
    m = JOBREF_RE.match(ref)
    if not m:
        return None, None, ref
    jid, idxspec = m.group(1), m.group(2)
    job = state["jobs"].get(str(int(jid)))
    label = f"{int(jid)}[{idxspec}]" if idxspec is not None else str(int(jid))
    if job is None or not visible(job, now):
        return None, None, label
    if idxspec is None:
        return job, [int(i) for i in sorted(job["elements"], key=int)], label
    wanted = parse_index_list(idxspec)
    if wanted is None or not job["array"]:
        return None, None, label
    present = [i for i in wanted if str(i) in job["elements"]]
    if not present:
        return None, None, label
    return job, present, label


def jobs_by_name(state: dict, pattern: str):
    """Jobs whose name (base name for arrays) matches ``pattern`` (``*`` wildcards; ``name[idx]``)."""
    m = re.fullmatch(r"(.*)\[([^\]]*)\]", pattern)
    idxs = None
    if m and parse_index_list(m.group(2)) is not None:
        pattern, idxs = m.group(1), parse_index_list(m.group(2))
    out = []
    for key in sorted(state["jobs"], key=int):
        job = state["jobs"][key]
        if fnmatch.fnmatchcase(job["base_name"], pattern) or fnmatch.fnmatchcase(job["name"], pattern):
            sel = [int(i) for i in sorted(job["elements"], key=int)]
            if idxs is not None:
                sel = [i for i in sel if i in idxs]
            if sel:
                out.append((job, sel))
    return out


# ----------------------------------------------------------------------------------------------------
# dependency expressions

#: the dependency functions the project writes (``ended``) and the fake's own tests use
DEP_FUNCS = {"done", "ended", "exit"}


class DepError(Exception):
    pass


def _dep_tokens(text: str) -> list[str]:
    toks: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("&&", i) or text.startswith("||", i):
            toks.append(text[i:i + 2])
            i += 2
        elif c in "()!,":
            toks.append(c)
            i += 1
        elif c in "\"'":
            j = text.find(c, i + 1)
            if j < 0:
                raise DepError("unbalanced quote")
            toks.append(text[i:j + 1])
            i = j + 1
        else:
            j = i
            depth = 0
            while j < len(text):
                ch = text[j]
                if ch == "[":
                    depth += 1
                elif ch == "]":
                    depth -= 1
                elif depth == 0 and (ch.isspace() or ch in "(),!" or text.startswith("&&", j)
                                     or text.startswith("||", j)):
                    break
                j += 1
            toks.append(text[i:j])
            i = j
    return toks


def parse_dependency(text: str):
    """Parse an LSF -w expression into a small AST (tuples)."""
    toks = _dep_tokens(text)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take(expected=None):
        nonlocal pos
        tok = peek()
        if tok is None or (expected is not None and tok != expected):
            raise DepError(f"expected {expected!r}, got {tok!r}")
        pos += 1
        return tok

    def chain(op, name, operand):  # operand (op operand)*, left-associative
        node = operand()
        while peek() == op:
            take()
            node = (name, node, operand())
        return node

    def expr():
        return chain("||", "or", term)

    def term():
        return chain("&&", "and", factor)

    def factor():
        tok = peek()
        if tok is None:
            raise DepError("unexpected end")
        if tok == "!":
            take()
            return ("not", factor())
        if tok == "(":
            take()
            node = expr()
            take(")")
            return node
        take()
        if tok.lower() in DEP_FUNCS and peek() == "(":
            take("(")
            ref = take()
            arg = None
            if peek() == ",":
                take()
                parts = []
                while peek() not in (")", None):
                    parts.append(take())
                arg = " ".join(parts)
            take(")")
            return ("cond", tok.lower(), ref, arg)
        return ("cond", "done", tok, None)

    node = expr()
    if pos != len(toks):
        raise DepError(f"trailing tokens {toks[pos:]}")
    return node


def _dep_targets(state: dict, ref: str):
    """Resolve a dependency job reference to a list of (job, indices); [] when nothing matches."""
    if ref[:1] in "\"'":
        return jobs_by_name(state, ref[1:-1])
    m = JOBREF_RE.match(ref)
    if m:
        job = state["jobs"].get(str(int(m.group(1))))
        if job is None:
            return []
        idxs = [int(i) for i in sorted(job["elements"], key=int)]
        if m.group(2) is not None:
            wanted = parse_index_list(m.group(2)) or []
            idxs = [i for i in idxs if i in wanted]
        return [(job, idxs)] if idxs else []
    return jobs_by_name(state, ref)


def _cmp(value: int, arg: str | None, total: int) -> bool:
    if arg is None or arg.strip() in ("", "*"):
        return value == total
    m = re.fullmatch(r"\s*(==|!=|>=|<=|>|<)?\s*(\d+)\s*", arg)
    if not m:
        return False
    op, n = m.group(1) or "==", int(m.group(2))
    return {"==": value == n, "!=": value != n, ">=": value >= n, "<=": value <= n,
            ">": value > n, "<": value < n}[op]


def eval_dependency(node, state: dict):
    """Three-valued: True (satisfied), False (can never be satisfied), None (not yet)."""
    kind = node[0]
    if kind == "not":
        v = eval_dependency(node[1], state)
        return None if v is None else not v
    if kind in ("and", "or"):
        a, b = eval_dependency(node[1], state), eval_dependency(node[2], state)
        if kind == "and":
            if a is False or b is False:
                return False
            return True if (a and b) else None
        if a is True or b is True:
            return True
        return False if (a is False and b is False) else None
    _, func, ref, arg = node
    targets = _dep_targets(state, ref)
    if not targets:
        return False
    stats = [t[0]["elements"][str(i)]["stat"] for t in targets for i in t[1]]
    codes = [t[0]["elements"][str(i)].get("exit_code") for t in targets for i in t[1]]
    total = len(stats)
    if func == "done":
        if all(s == "DONE" for s in stats):
            return True
        return False if any(s == "EXIT" for s in stats) else None
    if func == "exit":
        if arg:
            m = re.fullmatch(r"\s*(==|!=|>=|<=|>|<)?\s*(\d+)\s*", arg)
            ok = [s == "EXIT" and codes[k] is not None and m is not None and _cmp(codes[k], arg, total)
                  for k, s in enumerate(stats)]
        else:
            ok = [s == "EXIT" for s in stats]
        if all(ok):
            return True
        return False if any(s == "DONE" for s in stats) or all(s in FINISHED for s in stats) else None
    if func == "ended":
        return True if all(s in FINISHED for s in stats) else None
    raise DepError(f"unknown dependency function {func}")


def dependency_refs(node) -> list[str]:
    if node[0] == "not":
        return dependency_refs(node[1])
    if node[0] in ("and", "or"):
        return dependency_refs(node[1]) + dependency_refs(node[2])
    return [node[2]]


# ----------------------------------------------------------------------------------------------------
# bsub

BSUB_USAGE = (
    "Usage: bsub [-h] [-V] [-H] [-x] [-r] [-N] [-B] [-I | -K] [-w depend_cond] [-q queue_name ...]\n"
    "            [-m host_name[+[pref_level]] ...] [-n min_proc[,max_proc]] [-R res_req] [-J job_name]\n"
    "            [-o out_file] [-e err_file] [-oo out_file] [-eo err_file] [-W run_limit] [-M mem_limit]\n"
    "            [-P project_name] [-cwd dir] [-L login_shell] [-gpu gpu_req] [-wa signal] [-wt time]\n"
    "            [-env env_vars] [command [argument ...]]"
)

BSUB_ARG_OPTS = {
    "-J", "-q", "-n", "-W", "-We", "-o", "-oo", "-e", "-eo", "-R", "-M", "-gpu", "-P", "-w", "-wa", "-wt",
    "-env", "-cwd", "-u", "-app", "-L", "-G", "-m", "-b", "-t", "-i", "-is", "-E", "-Ep", "-c", "-F", "-D",
    "-S", "-C", "-v", "-T", "-g", "-sla", "-sp", "-k", "-Jd", "-outdir", "-Q", "-ext", "-a", "-data", "-f",
    "-p", "-s", "-U", "-rnc", "-stage", "-clusters", "-alloc_flags", "-hostfile", "-network", "-freq",
    "-core_isolation", "-cn_cu", "-cn_mem", "-csm", "-smt", "-nnodes", "-jsdl", "-jsdl_strict", "-pack",
    "-eptl", "-ptl", "-XF",
}
BSUB_FLAG_OPTS = {
    "-B", "-N", "-H", "-I", "-Ip", "-Is", "-IS", "-ISp", "-ISs", "-IX", "-K", "-r", "-rn", "-x", "-ul",
    "-Zs", "-tty", "-hl", "-ti", "-datachk", "-h", "-V",
}
OPENLAVA_REJECT = {"-gpu", "-wa", "-wt", "-env", "-We", "-outdir", "-Jd", "-cwd", "-app", "-data", "-ext"}
REPEATABLE = {"-R", "-f", "-data"}
#: single-letter options that also take their value attached (-n4, -M1000, -W10, -qnormal)
ATTACHABLE = {"-n", "-M", "-W", "-q", "-J", "-o", "-e", "-R", "-P", "-w", "-m", "-u", "-G", "-L"}
MEM_UNIT_RE = re.compile(r"^\d+(\.\d+)?\s*[KMGTPE]?B?$", re.I)


class BsubError(Exception):
    pass


def parse_bsub_args(args: list[str], dial: str, cli: bool):
    """Returns (list of (option, value), command tokens)."""
    opts: list[tuple[str, str | None]] = []
    i = 0
    arg_opts = BSUB_ARG_OPTS - OPENLAVA_REJECT if dial == "openlava" else BSUB_ARG_OPTS
    flag_opts = BSUB_FLAG_OPTS
    while i < len(args):
        tok = args[i]
        if tok == "--":
            i += 1
            break
        if not tok.startswith("-") or tok == "-":
            break
        if tok in arg_opts:
            if i + 1 >= len(args):
                raise BsubError(f"bsub: option requires an argument -- {tok[1:]}\n{BSUB_USAGE}")
            opts.append((tok, args[i + 1]))
            i += 2
            continue
        if tok in flag_opts:
            opts.append((tok, None))
            i += 1
            continue
        head = tok[:2]
        if head in ATTACHABLE and head in arg_opts and len(tok) > 2 and tok not in OPENLAVA_REJECT:
            opts.append((head, tok[2:]))  # attached value: -n4, -M1000, -qnormal
            i += 1
            continue
        raise BsubError(f"bsub: illegal option -- {tok[1:]}\n{BSUB_USAGE}")
    return opts, args[i:]


def parse_bsub_script(text: str, dial: str):
    opts: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("#BSUB"):
            continue
        try:
            toks = shlex.split(s[5:], comments=True)
        except ValueError:
            continue
        sub, _rest = parse_bsub_args(toks, dial, cli=False)
        opts.extend(sub)
    return opts


def _check_openlava(opts: list[tuple[str, str | None]]) -> None:
    if sum(1 for o, _ in opts if o == "-R") > 1:
        raise BsubError("Bad resource requirement syntax. Job not submitted.")
    for o, v in opts:
        if o == "-M" and v is not None and not re.fullmatch(r"\d+", v.strip()):
            raise BsubError(f"{v}: Bad argument for option -M. Job not submitted.")
        if o == "-R" and v and re.search(r"mem\s*=\s*\d+(\.\d+)?\s*[KMGTPE]B?\b", v, re.I):
            raise BsubError("Bad resource requirement syntax. Job not submitted.")


def _check_resreq(value: str) -> None:
    if value.count("[") != value.count("]") or value.count("(") != value.count(")"):
        raise BsubError("Bad resource requirement syntax. Job not submitted.")


def _merge_opts(script_opts, cli_opts) -> dict:
    merged: dict[str, object] = {}
    for source in (script_opts, cli_opts):
        seen_rep: set[str] = set()
        for o, v in source:
            if o in REPEATABLE:
                if o not in seen_rep:
                    merged[o] = []  # a source that gives -R replaces the other source's -R list
                    seen_rep.add(o)
                merged[o].append(v)  # type: ignore[union-attr]
            else:
                merged[o] = v if v is not None else True
    return merged


def _apply_env_option(spec: str, base: dict) -> dict:
    items = [s.strip() for s in spec.split(",") if s.strip()]
    low = [s.lower() for s in items]
    env = dict(base) if ("all" in low or not items) else {}
    for item in items:
        if item.lower() in ("all", "none"):
            continue
        if item.startswith("~"):
            env.pop(item[1:], None)
        elif "=" in item:
            k, v = item.split("=", 1)
            env[k.strip()] = v
        elif item in base:
            env[item] = base[item]
    return env


def _spawn_supervisor(jobid) -> int:
    log = open(os.path.join(spool_dir(jobid), "supervisor.log"), "ab")
    try:
        p = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "scheduler.py"), "supervise", str(jobid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True, close_fds=True, cwd="/",
        )
    finally:
        log.close()
    return p.pid


def main_bsub(argv: list[str]) -> int:
    log_call("bsub", argv)
    if injected_failure("bsub"):
        sys.stderr.write("batch system daemon not responding ... still trying\n"
                         "LSF daemon (LIM) not responding. Job not submitted.\n")
        return 255
    dial = dialect()
    try:
        cli_opts, command = parse_bsub_args(argv, dial, cli=True)
    except BsubError as exc:
        sys.stderr.write(f"{exc}\n")
        return 255
    flags = {o for o, _ in cli_opts}
    if "-h" in flags:
        sys.stderr.write(BSUB_USAGE + "\n")
        return 0
    if "-V" in flags:
        sys.stderr.write((OPENLAVA_VERSION if dial == "openlava" else LSF_VERSION) + "\n")
        return 0
    if flags & {"-I", "-Ip", "-Is", "-IS", "-ISp", "-ISs", "-IX"}:
        sys.stderr.write("fake LSF: interactive jobs (-I*) are not supported. Job not submitted.\n")
        return 255

    script_opts: list = []
    from_stdin = not command
    parse_file = (not from_stdin and len(command) == 1
                  and os.environ.get("LSB_BSUB_PARSE_SCRIPT", "").upper() in ("Y", "YES")
                  and os.path.isfile(command[0]))
    try:
        if from_stdin:
            text = sys.stdin.read() if sys.stdin is not None and not sys.stdin.isatty() else ""
            if not text.strip():
                sys.stderr.write("Empty job. Job not submitted.\n")
                return 255
            script_opts = parse_bsub_script(text, dial)
            job_text = text
        elif parse_file:
            with open(command[0]) as fh:
                job_text = fh.read()
            script_opts = parse_bsub_script(job_text, dial)
        else:
            job_text = " ".join(command)
        if dial == "openlava":
            _check_openlava(script_opts)
            _check_openlava(cli_opts)
        opts = _merge_opts(script_opts, cli_opts)
        return _submit(opts, job_text, from_stdin or parse_file, dial, explicit_queue="-q" in opts)
    except BsubError as exc:
        sys.stderr.write(f"{exc}\n")
        return 255


def _submit(opts: dict, job_text: str, is_script: bool, dial: str, explicit_queue: bool) -> int:
    now = time.time()
    queue = str(opts.get("-q") or default_queue()).split()[0]
    allowed = allowed_queues()
    if allowed is not None and queue not in allowed:
        raise BsubError(f"{queue}: No such queue. Job not submitted.")

    # job name / array
    raw_name = opts.get("-J")
    if raw_name:
        name = str(raw_name)
    elif is_script:
        name = ";".join(line for line in job_text.strip().splitlines())
    else:
        name = job_text
    name = name[:4094]
    array = False
    indices = [0]
    limit = None
    base_name = name
    m = re.fullmatch(r"(.*)\[([^\]]*)\](?:%(\d+))?", name, re.S) if raw_name else None
    if m:
        idxs = parse_index_list(m.group(2))
        if idxs is None:
            raise BsubError("Job array index error. Job not submitted.")
        if len(idxs) > max_array_size() or max(idxs) > max_array_size():
            raise BsubError("Job array index too large. Job not submitted.")
        array, indices, base_name = True, idxs, m.group(1)
        limit = int(m.group(3)) if m.group(3) else None
        if limit is not None and limit < 1:
            raise BsubError("Job array index error. Job not submitted.")

    # numbers and limits
    ncores = 1
    if opts.get("-n"):
        nums = str(opts["-n"]).split(",")
        try:
            ncores = max(1, int(nums[-1]))
        except ValueError as exc:
            raise BsubError(f"{opts['-n']}: Bad argument for option -n. Job not submitted.") from exc
    run_limit = None
    if opts.get("-W"):
        run_limit = parse_minutes(str(opts["-W"]))
        if run_limit is None or run_limit <= 0:
            raise BsubError(f"{opts['-W']}: Bad RUNLIMIT specification. Job not submitted.")
    warn_sig = None
    warn_time = None
    if opts.get("-wa") is not None or opts.get("-wt") is not None:
        if opts.get("-wa") is None or opts.get("-wt") is None:
            pass  # LSF: a warning action needs both; one alone is ignored
        else:
            warn_sig = parse_signal(str(opts["-wa"]))
            if warn_sig is None:
                raise BsubError(f"{opts['-wa']}: Bad job warning action. Job not submitted.")
            warn_time = parse_minutes(str(opts["-wt"]))
            if warn_time is None:
                raise BsubError(f"{opts['-wt']}: Bad job warning time. Job not submitted.")
    if opts.get("-M") and dial == "lsf10" and not MEM_UNIT_RE.match(str(opts["-M"]).strip()):
        raise BsubError(f"{opts['-M']}: Bad argument for option -M. Job not submitted.")
    for r in opts.get("-R", []) or []:
        _check_resreq(str(r))
    for sig_opt in ("-gpu",):
        if sig_opt in opts and not str(opts[sig_opt]).strip():
            raise BsubError("Bad GPU requirement syntax. Job not submitted.")

    # environment and directories
    sub_cwd = os.getcwd()
    env = dict(os.environ)
    if opts.get("-env"):
        env = _apply_env_option(str(opts["-env"]), env)
    cwd_tmpl = str(opts["-cwd"]) if opts.get("-cwd") else None
    out_tmpl = opts.get("-oo") or opts.get("-o")
    err_tmpl = opts.get("-eo") or opts.get("-e")
    direct = os.environ.get("LSB_STDOUT_DIRECT", "").upper() in ("Y", "YES")
    shell = str(opts["-L"]) if opts.get("-L") else "/bin/sh"

    store = Store(state_dir())
    dep_text = str(opts["-w"]) if opts.get("-w") else None
    with store.locked() as st:
        dep_ast = None
        if dep_text:
            try:
                dep_ast = parse_dependency(dep_text)
            except DepError as exc:
                raise BsubError("Dependency condition syntax error. Job not submitted.") from exc
            for ref in dependency_refs(dep_ast):
                if not _dep_targets(st, ref):
                    raise BsubError(f"{ref}: No matching job found. Job not submitted.")
        jobid = int(st.get("next_id", FIRST_JOB_ID))
        st["next_id"] = jobid + 1
        sd = spool_dir(jobid)
        script_path = os.path.join(sd, "job.sh")
        with open(script_path, "w") as fh:
            fh.write(job_text if job_text.endswith("\n") else job_text + "\n")
        os.chmod(script_path, 0o755)
        with open(os.path.join(sd, "env.json"), "w") as fh:
            json.dump(env, fh)
        held = bool(opts.get("-H"))
        elements = {
            str(i): {"stat": "PSUSP" if held else "PEND", "pid": None, "start": None, "finish": None,
                     "exit_code": None, "term": None, "runs": 0, "req": [], "exec_host": None,
                     "out_path": None, "err_path": None, "cwd": None,
                     "pend_reason": ("The job was suspended by the user while pending" if held
                                     else "New job is waiting for scheduling")}
            for i in indices
        }
        job = {
            "id": jobid, "name": name, "base_name": base_name, "array": array, "limit": limit,
            "queue": queue, "queue_explicit": explicit_queue, "user": username(), "from_host": hostname(),
            "submit_time": now, "sub_cwd": sub_cwd, "cwd_tmpl": cwd_tmpl, "script": script_path,
            "command": job_text, "is_script": is_script, "shell": shell, "ncores": ncores,
            "out_tmpl": out_tmpl, "err_tmpl": err_tmpl,
            "out_overwrite": bool(opts.get("-oo")), "err_overwrite": bool(opts.get("-eo")),
            "direct": bool(direct and out_tmpl), "run_limit": run_limit, "warn_sig": warn_sig,
            "warn_time": warn_time, "depend": dep_text, "project": opts.get("-P") or "default",
            "resreq": list(opts.get("-R", []) or []), "mem_limit": opts.get("-M"), "gpu": opts.get("-gpu"),
            "app": opts.get("-app"), "description": opts.get("-Jd"), "group": opts.get("-g"),
            "options": {k: v for k, v in opts.items() if isinstance(v, (str, bool, list))},
            "elements": elements, "supervisor_pid": None,
        }
        st["jobs"][str(jobid)] = job
        job["supervisor_pid"] = _spawn_supervisor(jobid)
    if explicit_queue:
        print(f"Job <{jobid}> is submitted to queue <{queue}>.", flush=True)
    else:
        print(f"Job <{jobid}> is submitted to default queue <{queue}>.", flush=True)
    if opts.get("-K"):
        return _wait_k(store, jobid)
    return 0


def _wait_k(store: Store, jobid: int) -> int:
    print("<<Waiting for dispatch ...>>", flush=True)
    started = False
    while True:
        job = store.read()["jobs"].get(str(jobid))
        if job is None:
            return 255
        stats = [el["stat"] for el in job["elements"].values()]
        if not started and any(s not in ("PEND", "PSUSP") for s in stats):
            print(f"<<Starting on {hostname()}>>", flush=True)
            started = True
        if all(s in FINISHED for s in stats):
            print("<<Job is finished>>", flush=True)
            codes = [el.get("exit_code") or 0 for el in job["elements"].values() if el["stat"] == "EXIT"]
            return (codes[0] or 1) if codes else 0
        time.sleep(poll_interval())


# ----------------------------------------------------------------------------------------------------
# supervisor (the fake sbatchd): one per submission


class Run:
    def __init__(self, proc, start: float, out_fh, err_fh):
        self.proc = proc
        self.start = start
        self.out_fh = out_fh
        self.err_fh = err_fh
        self.warned = False
        self.usr2_at: float | None = None
        self.limit_killed = False
        self.kill_reason: str | None = None  # TERM_OWNER / TERM_REQUEUE_OWNER
        self.kill_steps: list[int] = []
        self.kill_next = 0.0
        self.requeue = False
        self.held_after_requeue = False
        self.kill_as_done = False


def _subst(tmpl: str, job: dict, idx: int) -> str:
    out = tmpl.replace("%J", str(job["id"])).replace("%I", str(idx if job["array"] else 0))
    return out.replace("%U", job["user"])


def _resolve_paths(job: dict, idx: int):
    cwd = job["sub_cwd"]
    if job.get("cwd_tmpl"):
        c = _subst(job["cwd_tmpl"], job, idx)
        cwd = c if os.path.isabs(c) else os.path.join(job["sub_cwd"], c)
        with contextlib.suppress(OSError):
            os.makedirs(cwd, exist_ok=True)
    if not os.path.isdir(cwd):
        cwd = "/tmp"  # LSF: job runs in /tmp when the working directory is not accessible

    def _file(tmpl, ext):
        if not tmpl:
            return None
        p = _subst(str(tmpl), job, idx)
        p = p if os.path.isabs(p) else os.path.join(cwd, p)
        if os.path.isdir(p):
            stem = f"{job['id']}_{idx}" if job["array"] else f"{job['id']}"
            p = os.path.join(p, f"{stem}.{ext}")
        return p

    return cwd, _file(job.get("out_tmpl"), "out"), _file(job.get("err_tmpl"), "err")


def _job_env(job: dict, idx: int, cwd: str, out_path, err_path, base_env: dict) -> dict:
    env = dict(base_env)
    for stale in ("LSB_JOBINDEX_END", "LSB_JOBINDEX_STEP", "LSB_OUTPUTFILE", "LSB_ERRORFILE"):
        env.pop(stale, None)  # left over when bsub itself ran inside an LSF job
    host = hostname()
    n = int(job["ncores"])
    env.update({
        "LSB_JOBID": str(job["id"]),
        "LSB_JOBINDEX": str(idx if job["array"] else 0),
        "LSB_JOBNAME": element_name(job, idx),
        "LSB_QUEUE": job["queue"],
        "LSB_MAX_NUM_PROCESSORS": str(n),
        "LSB_DJOB_NUMPROC": str(n),
        "LSB_HOSTS": " ".join([host] * n),
        "LSB_MCPU_HOSTS": f"{host} {n}",
        "LSB_SUB_HOST": job["from_host"],
        "LSB_EXEC_CLUSTER": CLUSTER,
        "LSB_JOBFILENAME": job["script"],
        "LSB_JOB_EXECUSER": job["user"],
        "LS_SUBCWD": job["sub_cwd"],
        "LSB_PROJECT_NAME": str(job["project"]),
        "LSF_VERSION": "10.1",
    })
    if job["array"]:
        env["LSB_JOBINDEX_END"] = str(max(int(i) for i in job["elements"]))
        env["LSB_JOBINDEX_STEP"] = "1"
    if out_path:
        env["LSB_OUTPUTFILE"] = out_path
    if err_path:
        env["LSB_ERRORFILE"] = err_path
    return env


def _argv_for(job: dict) -> list[str]:
    first = job["command"].split("\n", 1)[0]
    if job["is_script"] and first.startswith("#!"):
        return [job["script"]]  # the kernel honours the shebang line
    return [job["shell"], job["script"]]


def _report(job: dict, idx: int, el: dict, status_lines: list[str], end: float, err_path) -> tuple[str, str]:
    start = el.get("start") or end
    n = int(job["ncores"])
    hosts = f"{n}*{hostname()}" if n > 1 else hostname()
    label = element_label(job, idx)
    verdict = "Done" if status_lines == ["Successfully completed."] else "Exited"
    head = [
        f"Sender: LSF System <lsfadmin@{hostname()}>",
        f"Subject: Job {label}: <{job['name']}> in cluster <{CLUSTER}> {verdict}",
        "",
        f"Job <{job['name']}> was submitted from host <{job['from_host']}> by user <{job['user']}> "
        f"in cluster <{CLUSTER}> at {_ctime(job['submit_time'])}",
        f"Job was executed on host(s) <{hosts}>, in queue <{job['queue']}>, as user <{job['user']}> "
        f"in cluster <{CLUSTER}> at {_ctime(start)}",
        f"<{os.path.expanduser('~')}> was used as the home directory.",
        f"<{el.get('cwd') or job['sub_cwd']}> was used as the working directory.",
        f"Started at {_ctime(start)}",
        f"Terminated at {_ctime(end)}",
        f"Results reported at {_ctime(end)}",
        "",
        "Your job looked like:",
        "",
        "------------------------------------------------------------",
        "# LSBATCH: User input",
        job["command"].rstrip("\n"),
        "------------------------------------------------------------",
        "",
        *status_lines,
        "",
        "Resource usage summary:",
        "",
        f"    CPU time :                                   {0.0:.2f} sec.",
        "    Max Memory :                                 -",
        "    Average Memory :                             -",
        "    Total Requested Memory :                     -",
        "    Delta Memory :                               -",
        "    Max Swap :                                   -",
        "    Max Processes :                              -",
        "    Max Threads :                                -",
        f"    Run time :                                   {int(round(end - start))} sec.",
        f"    Turnaround time :                            {int(round(end - job['submit_time']))} sec.",
        "",
        "The output (if any) follows:",
        "",
        "",
    ]
    tail = ""
    if err_path:
        tail = f"\n\nPS:\n\nRead file <{err_path}> for stderr output of this job.\n\n"
    return "\n".join(head), tail


TERM_TEXT = {
    "TERM_OWNER": "TERM_OWNER: job killed by owner.",
    "TERM_REQUEUE_OWNER": "TERM_REQUEUE_OWNER: job killed and requeued by owner.",
    "TERM_RUNLIMIT": "TERM_RUNLIMIT: job killed after reaching LSF run time limit.",
}


def _deliver_output(job: dict, idx: int, el: dict, status_lines: list[str], end: float) -> None:
    sd = spool_dir(job["id"])
    out_path, err_path = el.get("out_path"), el.get("err_path")
    head, tail = _report(job, idx, el, status_lines, end, err_path)
    if out_path:
        try:
            if job["direct"]:
                with open(out_path, "a") as fh:
                    fh.write("\n" + head + tail)
            else:
                try:
                    with open(os.path.join(sd, f"{idx}.out"), errors="replace") as fh:
                        body = fh.read()
                except OSError:
                    body = ""
                mode = "w" if job["out_overwrite"] and int(el.get("runs", 0)) == 0 else "a"
                with open(out_path, mode) as fh:
                    fh.write(head + body + tail)
        except OSError:
            pass  # LSF would mail the output when the -o file cannot be written
    if err_path and not job["direct"]:
        try:
            with open(os.path.join(sd, f"{idx}.err"), "rb") as fh:
                data = fh.read()
            mode = "wb" if job["err_overwrite"] and int(el.get("runs", 0)) == 0 else "ab"
            with open(err_path, mode) as fh:
                fh.write(data)
        except OSError:
            pass


def supervise(jobid: str) -> int:
    store = Store(state_dir())
    key = str(int(jobid))
    runs: dict[int, Run] = {}
    sd = spool_dir(key)
    with open(os.path.join(sd, "env.json")) as fh:
        base_env = json.load(fh)
    # run-time settings come from the submitter's environment (inherited through bsub)
    spm = seconds_per_minute()
    grace = kill_grace()
    interval = terminate_interval()
    tick = poll_interval()
    max_running = int(_env_float("FAKE_LSF_MAX_RUNNING", 0))
    last_sig = None
    next_due = 0.0
    while True:
        now = time.time()
        finished_any = any(r.proc.poll() is not None for r in runs.values())
        if not finished_any and now < next_due and store.signature() == last_sig:
            time.sleep(tick)
            continue
        next_due = now + 5.0
        done_all = False
        with store.locked() as st:
            job = st["jobs"].get(key)
            if job is None:
                return 0
            now = time.time()
            # 1. requests queued by bkill / brequeue / bstop / bresume
            for skey, el in job["elements"].items():
                idx = int(skey)
                reqs, el["req"] = el.get("req") or [], []
                run = runs.get(idx)
                for req in reqs:
                    kind = req.get("type")
                    if run is None:
                        continue
                    pgid = run.proc.pid
                    if kind in ("kill", "requeue"):
                        if kind == "requeue":
                            run.requeue = True
                            run.held_after_requeue = bool(req.get("hold"))
                            run.kill_reason = "TERM_REQUEUE_OWNER"
                        else:
                            run.kill_reason = run.kill_reason or "TERM_OWNER"
                            run.kill_as_done = bool(req.get("as_done"))
                        if not run.kill_steps and run.proc.poll() is None:
                            if el["stat"] == "USUSP":
                                _killpg(pgid, signal.SIGCONT)
                            seq = [signal.SIGKILL] if req.get("force") else [
                                signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
                            _killpg(pgid, seq[0])
                            run.kill_steps = list(seq[1:])
                            run.kill_next = now + interval
                    elif kind == "signal":
                        _killpg(pgid, int(req["sig"]))
                    elif kind == "stop" and el["stat"] == "RUN":
                        _killpg(pgid, signal.SIGSTOP)
                        el["stat"] = "USUSP"
                    elif kind == "resume" and el["stat"] in ("USUSP", "SSUSP"):
                        _killpg(pgid, signal.SIGCONT)
                        el["stat"] = "RUN"
            # 2. timers: kill escalation and run limit
            for run in runs.values():
                if run.proc.poll() is not None:
                    continue
                pgid = run.proc.pid
                if run.kill_steps and now >= run.kill_next:
                    _killpg(pgid, run.kill_steps.pop(0))
                    run.kill_next = now + interval
                if run.kill_steps:
                    next_due = min(next_due, run.kill_next)
                if job.get("run_limit"):
                    limit_at = run.start + float(job["run_limit"]) * spm
                    if job.get("warn_sig") and not run.warned:
                        warn_at = limit_at - float(job["warn_time"]) * spm
                        if now >= warn_at:
                            _killpg(pgid, int(job["warn_sig"]))
                            run.warned = True
                        else:
                            next_due = min(next_due, warn_at)
                    if run.usr2_at is None:
                        if now >= limit_at:
                            _killpg(pgid, signal.SIGUSR2)
                            run.usr2_at = now
                        else:
                            next_due = min(next_due, limit_at)
                    if run.usr2_at is not None and not run.limit_killed:
                        if now >= run.usr2_at + grace:
                            _killpg(pgid, signal.SIGKILL)
                            run.limit_killed = True
                        else:
                            next_due = min(next_due, run.usr2_at + grace)
            # 3. finished processes
            for idx in list(runs):
                run = runs[idx]
                rc = run.proc.poll()
                if rc is None:
                    continue
                _killpg(run.proc.pid, signal.SIGKILL)  # LSF cleans up what the job left behind
                for fh in (run.out_fh, run.err_fh):
                    if fh is not None:
                        fh.close()
                del runs[idx]
                el = job["elements"][str(idx)]
                code = 128 - rc if rc < 0 else rc
                el["pid"] = None
                end = time.time()
                if run.requeue:
                    lines = [TERM_TEXT["TERM_REQUEUE_OWNER"], f"Exited with exit code {code}."]
                    _deliver_output(job, idx, el, lines, end)
                    el.update({"stat": "PSUSP" if run.held_after_requeue else "PEND", "start": None,
                               "finish": None, "exit_code": None, "term": None, "exec_host": None,
                               "runs": int(el.get("runs", 0)) + 1,
                               "pend_reason": "Job was requeued"})
                    continue
                term = None
                if run.kill_reason:
                    term = run.kill_reason
                elif run.usr2_at is not None and code != 0:
                    term = "TERM_RUNLIMIT"
                if run.kill_as_done:
                    stat = "DONE"
                else:
                    stat = "EXIT" if (code != 0 or term == "TERM_OWNER") else "DONE"
                if stat == "DONE":
                    lines = ["Successfully completed."]
                else:
                    lines = ([TERM_TEXT[term]] if term else []) + [f"Exited with exit code {code}."]
                el.update({"stat": stat, "finish": end, "exit_code": code if stat == "EXIT" else 0,
                           "term": term, "pend_reason": None})
                _deliver_output(job, idx, el, lines, end)
            # 4. dispatch pending elements
            pending = [int(k) for k, el in job["elements"].items() if el["stat"] == "PEND"]
            if pending:
                dep_ok = True
                if job.get("depend") and not job.get("depend_met"):
                    try:
                        verdict = eval_dependency(parse_dependency(job["depend"]), st)
                    except DepError:
                        verdict = False
                    if verdict is True:
                        job["depend_met"] = True
                    else:
                        dep_ok = False
                        reason = ("Dependency condition invalid or never satisfied" if verdict is False
                                  else "Job dependency condition not satisfied")
                        for k in pending:
                            job["elements"][str(k)]["pend_reason"] = reason
                if dep_ok:
                    active = sum(1 for el in job["elements"].values() if el["stat"] in ACTIVE)
                    cluster_active = 0
                    if max_running > 0:
                        cluster_active = sum(1 for j in st["jobs"].values() for el in j["elements"].values()
                                             if el["stat"] in ACTIVE)
                    for idx in sorted(pending):
                        el = job["elements"][str(idx)]
                        if job.get("limit") and active >= int(job["limit"]):
                            el["pend_reason"] = "The job array has reached its job slot limit"
                            continue
                        if max_running > 0 and cluster_active >= max_running:
                            el["pend_reason"] = "Job slot limit reached"
                            continue
                        try:
                            runs[idx] = _launch(job, idx, el, base_env)
                        except OSError as exc:  # e.g. -L shell or shebang interpreter missing
                            end = time.time()
                            el.update({"stat": "EXIT", "start": el.get("start") or end, "finish": end,
                                       "exit_code": 127, "term": None, "pend_reason": None})
                            with open(os.path.join(sd, f"{idx}.out"), "a") as fh:
                                fh.write(f"{exc}\n")
                            _deliver_output(job, idx, el, ["Exited with exit code 127."], end)
                            continue
                        active += 1
                        cluster_active += 1
                        next_due = 0.0  # register the new run's timers on the next tick
            # 5. done?
            if not runs and all(el["stat"] in FINISHED for el in job["elements"].values()):
                if job.get("supervisor_pid") == os.getpid():
                    job["supervisor_pid"] = None
                done_all = True
        last_sig = store.last_signature
        if done_all:
            return 0
        time.sleep(tick)


def _launch(job: dict, idx: int, el: dict, base_env: dict) -> Run:
    cwd, out_path, err_path = _resolve_paths(job, idx)
    sd = spool_dir(job["id"])
    now = time.time()
    err_fh = None
    try:
        if job["direct"]:
            mode = "wb" if job["out_overwrite"] and int(el.get("runs", 0)) == 0 else "ab"
            out_fh = open(out_path, mode)
            if err_path:
                emode = "wb" if job["err_overwrite"] and int(el.get("runs", 0)) == 0 else "ab"
                err_fh = open(err_path, emode)
        else:
            raise OSError
    except OSError:
        out_fh = open(os.path.join(sd, f"{idx}.out"), "wb")
        if err_path:
            err_fh = open(os.path.join(sd, f"{idx}.err"), "wb")
    el.update({"cwd": cwd, "out_path": out_path, "err_path": err_path})
    env = _job_env(job, idx, cwd, out_path, err_path, base_env)
    proc = subprocess.Popen(
        _argv_for(job), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out_fh,
        stderr=err_fh if err_fh is not None else subprocess.STDOUT,
        start_new_session=True, close_fds=True,
    )
    n = int(job["ncores"])
    el.update({"stat": "RUN", "pid": proc.pid, "start": now, "finish": None, "exit_code": None,
               "term": None, "pend_reason": None,
               "exec_host": f"{n}*{hostname()}" if n > 1 else hostname()})
    return Run(proc, now, out_fh, err_fh)


def ensure_supervisor(job: dict) -> None:
    """Called under the state lock after an element went back to PEND (brequeue -d/-e, bresume)."""
    if not _alive(job.get("supervisor_pid")):
        job["supervisor_pid"] = _spawn_supervisor(job["id"])


# ----------------------------------------------------------------------------------------------------
# bjobs

BJOBS_USAGE = (
    "Usage: bjobs [-h] [-V] [-A] [-a] [-aps] [-d] [-p] [-r] [-s] [-w | -l | -W] [-noheader]\n"
    "             [-o \"field_name[:[-][output_width]] ... [delimiter='character']\" [-json] [-hms]]\n"
    "             [-J job_name] [-q queue_name] [-P project_name] [-u user_name | -u all]\n"
    "             [job_ID | \"job_ID[index_list]\" ...]"
)
OPENLAVA_BJOBS_USAGE = (
    "Usage: bjobs [-h] [-V] [-A] [-a] [-d] [-p] [-r] [-s] [-w | -l | -W] [-J job_name] [-q queue_name]\n"
    "             [-P project_name] [-u user_name | -u all] [jobId | \"jobId[index_list]\" ...]"
)


def _v_exit_code(job, idx, el):
    if el["stat"] == "EXIT" and el.get("exit_code") is not None:
        return str(el["exit_code"])
    return None


def _v_exit_reason(job, idx, el):
    if el["stat"] != "EXIT":
        return None
    return {"TERM_OWNER": "TERM_OWNER: job killed by owner",
            "TERM_RUNLIMIT": "TERM_RUNLIMIT: job killed after reaching LSF run time limit"}.get(
        el.get("term") or "", None)


def _v_jobid(job, idx, el):
    if job["array"] and os.environ.get("LSB_BJOBS_DISPLAY_ENH", "").upper() in ("Y", "YES"):
        return f"{job['id']}[{idx}]"
    return str(job["id"])


FIELDS = {
    # name: (header, value function, recommended width)
    "jobid": ("JOBID", _v_jobid, 7),
    "jobindex": ("JOBINDEX", lambda j, i, e: str(i if j["array"] else 0), 8),
    "stat": ("STAT", lambda j, i, e: display_stat(j, e), 5),
    "user": ("USER", lambda j, i, e: j["user"], 7),
    "queue": ("QUEUE", lambda j, i, e: j["queue"], 10),
    "job_name": ("JOB_NAME", lambda j, i, e: element_name(j, i), 10),
    "pend_reason": ("PEND_REASON", lambda j, i, e: e.get("pend_reason") if e["stat"] in ("PEND", "PSUSP")
                    else None, 11),
    "exit_code": ("EXIT_CODE", _v_exit_code, 10),
    "exit_reason": ("EXIT_REASON", _v_exit_reason, 50),
    "from_host": ("FROM_HOST", lambda j, i, e: j["from_host"], 11),
    "exec_host": ("EXEC_HOST", lambda j, i, e: e.get("exec_host"), 11),
    "submit_time": ("SUBMIT_TIME", lambda j, i, e: _short_time(j["submit_time"]), 15),
    "runtimelimit": ("RUNTIMELIMIT", lambda j, i, e: format_minutes(j["run_limit"]) if j.get("run_limit")
                     else None, 12),
    "warning_action": ("WARNING_ACTION", lambda j, i, e: signal_name(j["warn_sig"]) if j.get("warn_sig")
                       else None, 15),
    "action_warning_time": ("ACTION_WARNING_TIME", lambda j, i, e: format_minutes(j["warn_time"])
                            if j.get("warn_time") is not None else None, 19),
}
ALIASES = {"id": "jobid", "name": "job_name"}


class FormatError(Exception):
    pass


def parse_format(spec: str):
    """``"jobid stat:5 job_name:-20 delimiter='^'"`` -> ([(field, width, right)], delimiter)."""
    delim = " "
    m = re.search(r"delimiter\s*=\s*'([^']*)'|delimiter\s*=\s*\"([^\"]*)\"|delimiter\s*=\s*(\S)", spec)
    if m:
        delim = next(g for g in m.groups() if g is not None)
        spec = spec[:m.start()] + spec[m.end():]
    cols = []
    for item in spec.replace(",", " ").split():
        parts = item.split(":")
        name = parts[0].lower()
        name = ALIASES.get(name, name)
        if name not in FIELDS:
            raise FormatError(f"{parts[0]}: Invalid field name. Use \"bjobs -h\" for help.")
        width, right = None, False
        if len(parts) > 1:
            w = parts[1]
            if w.startswith("-"):
                right, w = True, w[1:]
            width = int(w) if w.isdigit() else FIELDS[name][2]
        cols.append((name, width, right))
    if not cols:
        raise FormatError("Output format is empty.")
    return cols, delim


def _fit(value: str, width: int | None, right: bool, name: str) -> str:
    if width is None:
        return value
    if len(value) > width:
        value = ("*" + value[-(width - 1):]) if name == "job_name" and width > 1 else value[:width]
    return value.rjust(width) if right else value.ljust(width)


def _json_str(value: str) -> str:
    return json.dumps(value)[1:-1].replace("/", "\\/")


def _render_json(cols, rows, errors) -> str:
    lines = ["{", '  "COMMAND":"bjobs",', f'  "JOBS":{len(rows) + len(errors)},', '  "RECORDS":[']
    recs = []
    for job, idx, el in rows:
        fields = []
        for name, _w, _r in cols:
            v = FIELDS[name][1](job, idx, el)
            fields.append(f'      "{FIELDS[name][0]}":"{_json_str("" if v is None else str(v))}"')
        recs.append("    {\n" + ",\n".join(fields) + "\n    }")
    for msg in errors:
        recs.append(f'    {{\n      "ERROR":"{_json_str(msg)}"\n    }}')
    if recs:
        lines.append(",\n".join(recs))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def _render_columns(cols, delim, rows, header: bool) -> str:
    out = []
    if header:
        out.append(delim.join(_fit(FIELDS[n][0], w, r, "") for n, w, r in cols).rstrip())
    for job, idx, el in rows:
        vals = []
        for name, w, r in cols:
            v = FIELDS[name][1](job, idx, el)
            v = "-" if v is None or v == "" else str(v)
            vals.append(_fit(v, w, r, name))
        out.append(delim.join(vals).rstrip() if delim == " " else delim.join(vals))
    return "\n".join(out) + ("\n" if out else "")


def _render_default(rows, header: bool, wide: bool) -> str:
    spec = [("jobid", 7), ("user", 7), ("stat", 5), ("queue", 10), ("from_host", 11), ("exec_host", 11),
            ("job_name", 10), ("submit_time", 12)]
    out = []
    if header:
        out.append("JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME")
    for job, idx, el in rows:
        parts = []
        for name, width in spec:
            v = FIELDS[name][1](job, idx, el)
            v = "" if v is None else str(v)
            if name == "submit_time":
                parts.append(v)
            elif wide or name == "jobid":
                parts.append(v.ljust(width) + " ")
            else:
                parts.append(_fit(v, width, False, name) + " ")
        out.append("".join(parts))
    return "\n".join(out) + ("\n" if out else "")


def main_bjobs(argv: list[str]) -> int:
    log_call("bjobs", argv)
    dial = dialect()
    usage = OPENLAVA_BJOBS_USAGE if dial == "openlava" else BJOBS_USAGE
    if injected_failure("bjobs"):
        sys.stderr.write("LSF is processing your request. Please wait ...\n"
                         "batch system daemon not responding ... still trying\n"
                         "LSF is down. Please wait ...\n")
        return 255
    single_flags = set("adprswx")
    single_args = set("JuqPmgG")
    long_flags = {"-noheader", "-json", "-hms", "-aps", "-UF"}
    long_args = {"-o", "-sla", "-app", "-Lp"}
    if dial == "openlava":
        long_flags, long_args = set(), set()
    f: set[str] = set()
    a: dict[str, str] = {}
    refs: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in ("-h", "-help"):
            sys.stderr.write(usage + "\n")
            return 0
        if tok == "-V":
            sys.stderr.write((OPENLAVA_VERSION if dial == "openlava" else LSF_VERSION) + "\n")
            return 0
        if tok in long_flags:
            f.add(tok)
            i += 1
            continue
        if tok in long_args:
            if i + 1 >= len(argv):
                return usage_exit("bjobs", f"bjobs: option requires an argument -- {tok[1:]}", usage)
            a[tok] = argv[i + 1]
            i += 2
            continue
        if tok.startswith("-") and len(tok) > 1:
            j = 1
            while j < len(tok):
                ch = tok[j]
                if ch in single_flags:
                    f.add("-" + ch)
                    j += 1
                elif ch in single_args:
                    val = tok[j + 1:]
                    if not val:
                        i += 1
                        if i >= len(argv):
                            return usage_exit("bjobs", f"bjobs: option requires an argument -- {ch}", usage)
                        val = argv[i]
                    a["-" + ch] = val
                    break
                else:
                    return usage_exit("bjobs", f"bjobs: illegal option -- {ch}", usage)
            i += 1
            continue
        refs.append(tok)
        i += 1

    fmt = a.get("-o")
    if fmt is None and dial == "lsf10" and os.environ.get("LSB_BJOBS_FORMAT", "").strip() \
            :
        fmt = os.environ["LSB_BJOBS_FORMAT"]
    cols = delim = None
    if fmt is not None:
        try:
            cols, delim = parse_format(fmt)
        except FormatError as exc:
            sys.stderr.write(f"{exc}\n")
            return 255
    as_json = "-json" in f and cols is not None
    header = "-noheader" not in f

    store = Store(state_dir())
    st = store.read()
    now = time.time()
    rows: list[tuple[dict, int, dict]] = []
    errors: list[str] = []
    rc = 0
    user_filter = a.get("-u")
    if refs:
        for ref in refs:
            job, idxs, label = resolve_ref(st, ref, now)
            if job is None or (user_filter not in (None, "all") and job["user"] != user_filter):
                errors.append(f"Job <{label}> is not found")
                rc = 255
                continue
            for idx in idxs:
                rows.append((job, idx, job["elements"][str(idx)]))
    else:
        if "-a" in f:
            states = None
        elif "-d" in f:
            states = set(FINISHED)
        else:
            states = set()
            if "-p" in f:
                states |= {"PEND", "PSUSP"}
            if "-r" in f:
                states |= {"RUN"}
            if "-s" in f:
                states |= set(SUSPENDED)
            if not states:
                states = {"PEND", "PSUSP", "RUN", "USUSP", "SSUSP", "UNKWN"}
        cands = [(j, [int(k) for k in sorted(j["elements"], key=int)])
                 for _, j in sorted(st["jobs"].items(), key=lambda kv: int(kv[0]))]
        if "-J" in a:
            cands = jobs_by_name(st, a["-J"])
        for job, idxs in cands:
            if not visible(job, now):
                continue
            if user_filter not in (None, "all") and job["user"] != user_filter:
                continue
            if user_filter is None and job["user"] != username():
                continue
            if "-q" in a and job["queue"] != a["-q"]:
                continue
            if "-P" in a and str(job.get("project")) != a["-P"]:
                continue
            for idx in idxs:
                el = job["elements"][str(idx)]
                if states is None or el["stat"] in states or display_stat(job, el) in states:
                    rows.append((job, idx, el))

        def order(row):
            stat = row[2]["stat"]
            rank = 0 if stat in ACTIVE else (1 if stat in ("PEND", "PSUSP") else 2)
            return (rank, row[0]["id"], row[1])

        rows.sort(key=order)
        if not rows and not as_json:
            if "-J" in a:
                msg = f"Job <{a['-J']}> is not found"
            elif "-a" in f:
                msg = "No job found"
            elif "-d" in f:
                msg = "No DONE/EXIT job found"
            elif f & {"-p", "-r", "-s"} == {"-p"}:
                msg = "No pending job found"
            elif f & {"-p", "-r", "-s"} == {"-r"}:
                msg = "No running job found"
            elif f & {"-p", "-r", "-s"} == {"-s"}:
                msg = "No suspended job found"
            else:
                msg = "No unfinished job found"
            sys.stderr.write(msg + "\n")
            return 255 if "-J" in a else 0

    if as_json:
        sys.stdout.write(_render_json(cols, rows, errors))
        return rc
    for msg in errors:
        sys.stderr.write(msg + "\n")
    if not rows:
        return rc
    if cols is not None:
        sys.stdout.write(_render_columns(cols, delim, rows, header))
    else:
        sys.stdout.write(_render_default(rows, header, wide="-w" in f))
    return rc


# ----------------------------------------------------------------------------------------------------
# bkill / brequeue / bstop / bresume


def _select_targets(st: dict, cmd: str, refs: list[str], a: dict):
    """Yields (job, indices, label) or (None, None, label) for not found refs."""
    now = time.time()
    if "-J" in a:
        found = [(j, idxs, f"{j['id']}") for j, idxs in jobs_by_name(st, a["-J"]) if visible(j, now)]
        if not found:
            return [(None, None, a["-J"])]
        return found
    if refs == ["0"]:
        return [(j, [int(k) for k in j["elements"]], str(j["id"]))
                for _k, j in sorted(st["jobs"].items(), key=lambda kv: int(kv[0]))
                if any(el["stat"] not in FINISHED for el in j["elements"].values())]
    if not refs:
        mine = [j for j in st["jobs"].values() if visible(j, now)]
        if not mine:
            return [(None, None, "")]
        last = max(mine, key=lambda j: j["id"])
        return [(last, [int(k) for k in last["elements"]], str(last["id"]))]
    return [resolve_ref(st, r, now) for r in refs]


def _parse_simple(argv, flags: str, args: str, cmd: str, usage: str):
    """(flags, option values, job refs) of a bkill/brequeue/bpeek command line; a bad option raises
    BsubError, which main() prints and turns into exit 255, as LSF does."""
    f: set[str] = set()
    a: dict[str, str] = {}
    refs: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("-") and len(tok) > 1 and not tok[1:].isdigit():
            name = tok[1:]
            if name in args.split():
                if i + 1 >= len(argv):
                    raise BsubError(f"{cmd}: option requires an argument -- {name}\n{usage}")
                a[tok] = argv[i + 1]
                i += 2
                continue
            if all(ch in flags for ch in name):
                f.update("-" + ch for ch in name)
                i += 1
                continue
            raise BsubError(f"{cmd}: illegal option -- {name}\n{usage}")
        refs.append(tok)
        i += 1
    return f, a, refs


BKILL_USAGE = ("Usage: bkill [-h] [-V] [-l] [-b] [-d] [-r] [-s signal_value | signal_name] [-J job_name]\n"
               "             [-q queue_name] [-u user_name | -u all] [0]\n"
               "             [job_ID ... | \"job_ID[index]\" ...]")


def main_bkill(argv: list[str]) -> int:
    log_call("bkill", argv)
    f, a, refs = _parse_simple(argv, "bdlrC", "s J q u m g sla app", "bkill", BKILL_USAGE)
    if "-l" in f:
        print(" ".join(sorted(SIGNAL_NAMES, key=lambda k: SIGNAL_NAMES[k])))
        return 0
    sig = None
    if "-s" in a:
        sig = parse_signal(a["-s"])
        if sig is None:
            sys.stderr.write(f"bkill: Illegal signal value: {a['-s']}\n")
            return 255
    if not refs and not (set(a) & {"-J", "-q", "-u", "-m", "-g"}):
        sys.stderr.write("Job ID or one of '-m', '-u' '-q' and '-g' must be specified\n")
        return 255
    rc = 0
    now = time.time()
    store = Store(state_dir())
    msgs: list[tuple[bool, str]] = []
    with store.locked() as st:
        for job, idxs, label in _select_targets(st, "bkill", refs, a):
            if job is None:
                msgs.append((False, f"Job <{label}>: No matching job found" if label else
                             "No unfinished job found"))
                rc = 255
                continue
            live = [i for i in idxs if job["elements"][str(i)]["stat"] not in FINISHED]
            if not live:
                msgs.append((False, f"Job <{label}>: Job has already finished"))
                rc = 255
                continue
            terminating = sig is None or sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
            for i in live:
                el = job["elements"][str(i)]
                if el["stat"] in ("PEND", "PSUSP"):
                    if terminating:
                        el.update({"stat": "DONE" if "-d" in f else "EXIT", "finish": now, "exit_code": None,
                                   "term": "TERM_OWNER", "pend_reason": None})
                else:
                    if sig is None:
                        el.setdefault("req", []).append({"type": "kill", "force": "-r" in f,
                                                         "as_done": "-d" in f})
                    else:
                        el.setdefault("req", []).append({"type": "signal", "sig": sig})
            verb = "is being terminated" if sig is None else "is being signaled"
            msgs.append((True, f"Job <{label}> {verb}"))
    for ok, msg in msgs:
        (sys.stdout if ok else sys.stderr).write(msg + "\n")
    return rc


BREQUEUE_USAGE = ("Usage: brequeue [-h] [-V] [-a] [-d] [-e] [-H] [-p] [-r] [-J job_name]\n"
                  "                [-u user_name | -u all] [job_ID | \"job_ID[index_list]\" ...]")


def main_brequeue(argv: list[str]) -> int:
    log_call("brequeue", argv)
    f, a, refs = _parse_simple(argv, "adeHpr", "J u", "brequeue", BREQUEUE_USAGE)
    allowed: set[str] = set()
    if "-a" in f:
        allowed |= {"DONE", "EXIT", "RUN", "USUSP", "SSUSP"}
    if "-d" in f:
        allowed.add("DONE")
    if "-e" in f:
        allowed.add("EXIT")
    if "-r" in f:
        allowed |= {"RUN", "USUSP", "SSUSP"}
    if "-p" in f:
        allowed |= {"PEND", "PSUSP"}
    if not allowed:
        allowed = {"RUN", "USUSP", "SSUSP"}
    hold = "-H" in f
    rc = 0
    msgs: list[tuple[bool, str]] = []
    store = Store(state_dir())
    with store.locked() as st:
        for job, idxs, label in _select_targets(st, "brequeue", refs, a):
            if job is None:
                msgs.append((False, f"Job <{label}>: No matching job found"))
                rc = 255
                continue
            chosen = [i for i in idxs if job["elements"][str(i)]["stat"] in allowed]
            if not chosen:
                stats = {job["elements"][str(i)]["stat"] for i in idxs}
                why = "Job has already finished" if stats <= set(FINISHED) else "Job is not running"
                msgs.append((False, f"Job <{label}>: {why}"))
                rc = 255
                continue
            restart = False
            for i in chosen:
                el = job["elements"][str(i)]
                if el["stat"] in ACTIVE:
                    el.setdefault("req", []).append({"type": "requeue", "hold": hold})
                else:
                    el.update({"stat": "PSUSP" if hold else "PEND", "start": None, "finish": None,
                               "exit_code": None, "term": None, "exec_host": None,
                               "runs": int(el.get("runs", 0)) + (0 if el["stat"] in ("PEND", "PSUSP") else 1),
                               "pend_reason": "Job was requeued"})
                    restart = True
            if restart:
                ensure_supervisor(job)
            msgs.append((True, f"Job <{label}> is being requeued"))
    for ok, msg in msgs:
        (sys.stdout if ok else sys.stderr).write(msg + "\n")
    return rc


# ----------------------------------------------------------------------------------------------------
# bpeek


def _peek_paths(job: dict, idx: int, el: dict):
    sd = spool_dir(job["id"])
    if job.get("direct") and el.get("out_path"):
        return el["out_path"], (el.get("err_path") if el.get("err_path") else None)
    err = os.path.join(sd, f"{idx}.err") if el.get("err_path") else None
    return os.path.join(sd, f"{idx}.out"), err


def main_bpeek(argv: list[str]) -> int:
    log_call("bpeek", argv)
    usage = ("Usage: bpeek [-h] [-V] [-f] [-q queue_name | -m host_name | -J job_name | job_ID\n"
             "             | \"job_ID[index]\"]")
    f, a, refs = _parse_simple(argv, "f", "q m J", "bpeek", usage)
    store = Store(state_dir())
    st = store.read()
    now = time.time()
    if "-J" in a:
        found = jobs_by_name(st, a["-J"])
        if not found:
            sys.stderr.write(f"Job <{a['-J']}> is not found\n")
            return 255
        job, idxs = found[-1]
        label = element_label(job, idxs[0]) if job["array"] else str(job["id"])
    elif refs:
        job, idxs, label = resolve_ref(st, refs[0], now)
        if job is None:
            sys.stderr.write(f"Job <{label}> is not found\n")
            return 255
    else:
        mine = [j for j in st["jobs"].values() if visible(j, now)
                and any(el["stat"] in ACTIVE for el in j["elements"].values())]
        if not mine:
            sys.stderr.write("No unfinished job found\n")
            return 255
        job = max(mine, key=lambda j: j["id"])
        idxs = [int(k) for k, el in job["elements"].items() if el["stat"] in ACTIVE]
        label = element_label(job, idxs[0])
    if job["array"] and len(idxs) > 1:
        sys.stderr.write(f"Job <{label}>: Cannot operate on job array\n")
        return 255
    idx = idxs[0]
    el = job["elements"][str(idx)]
    if el["stat"] in ("PEND", "PSUSP"):
        sys.stderr.write(f"Job <{label}> : Not yet started.\n")
        return 255
    if el["stat"] in FINISHED:
        sys.stderr.write(f"Job <{label}> : Job has already finished.\n")
        return 255
    out_path, err_path = _peek_paths(job, idx, el)
    print("<< output from stdout >>", flush=True)
    pos = _cat(out_path, 0)
    if "-f" not in f:
        if err_path:
            print("\n<< output from stderr >>", flush=True)
            _cat(err_path, 0)
        return 0
    run_no = int(el.get("runs", 0))
    while True:
        time.sleep(poll_interval())
        pos = _cat(out_path, pos)
        cur = store.read()["jobs"].get(str(job["id"]))
        cel = cur["elements"][str(idx)] if cur else None
        if cel is None or cel["stat"] not in ACTIVE or int(cel.get("runs", 0)) != run_no:
            _cat(out_path, pos)
            return 0


def _cat(path: str | None, pos: int) -> int:
    if not path:
        return pos
    try:
        with open(path, "rb") as fh:
            fh.seek(pos)
            data = fh.read()
    except OSError:
        return pos
    if data:
        sys.stdout.write(data.decode(errors="replace"))
        sys.stdout.flush()
    return pos + len(data)


# ----------------------------------------------------------------------------------------------------
# entry point

COMMANDS = {
    "bsub": main_bsub,
    "bjobs": main_bjobs,
    "bkill": main_bkill,
    "brequeue": main_brequeue,
    "bpeek": main_bpeek,
}


def main(cmd: str, argv: list[str]) -> int:
    try:
        return COMMANDS[cmd](argv)
    except BsubError as exc:  # what LSF's commands print for a bad option or argument
        sys.stderr.write(f"{exc}\n")
        return 255
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "supervise":
        sys.exit(supervise(sys.argv[2]))
    if len(sys.argv) >= 2 and sys.argv[1] in COMMANDS:
        sys.exit(main(sys.argv[1], sys.argv[2:]))
    sys.stderr.write("usage: scheduler.py {supervise JOBID | bsub|bjobs|... args}\n")
    sys.exit(2)
