"""How a run's notebook is executed: `papermill` (a Jupyter kernel, writes executed.ipynb) or `exec` (plain
Python, for machines without Jupyter, writes executed.log). `mintkit.batch.runner.execute` does the
bookkeeping (run folder, status.json, failures, resume) for both; see docs/profiles.md.

The `exec` engine runs the notebook's code cells in a fresh Python subprocess (one per run, so runs stay
isolated and `--jobs N` works as with kernels), in one namespace and in order: the `parameters` cell, then the
injected parameters (the values papermill would inject, `out_dir` included), then every other code cell.
`display` prints (a DataFrame as its full text). IPython-only lines (`%magic`, `!shell`) are refused, naming
the cell, before any cell runs. The child reports each cell's start, its error or the end on a pipe; the
parent enforces the per-cell timeout from outside, so a cell stuck in C code is stopped too.
"""
from __future__ import annotations

import builtins
import contextlib
import json
import linecache
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

ENGINES = ("papermill", "exec")
EXECUTED = {"papermill": "executed.ipynb", "exec": "executed.log"}  # what each engine leaves in the run folder
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding `mintkit`, for the child's path


class ExecError(Exception):
    """A failed exec-engine run, shaped like papermill's errors (`ename`, `evalue`, `exec_count` = the code
    cell's number) so the runner records both engines' failures the same way. `str()` ends with the cell's
    traceback, which the runner keeps in status.json."""

    def __init__(self, ename: str, evalue: str, exec_count: int | None = None, cell_traceback: str = "") -> None:
        self.ename, self.evalue, self.exec_count = ename, evalue, exec_count
        super().__init__(f"{ename}: {evalue}" + (f"\n{cell_traceback}" if cell_traceback else ""))


def read_cells(path: str | Path) -> list[dict]:
    """The notebook's cells as plain dicts, each ``source`` joined to one string (the .ipynb JSON read with the
    json module: nbformat is not installed on every machine that runs notebooks)."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a readable .ipynb notebook ({type(e).__name__}: {e})") from None
    out = []
    for c in cells:
        src = c.get("source", "")
        out.append(c | {"source": "".join(src) if isinstance(src, list) else src,
                        "metadata": c.get("metadata") or {}})
    return out


def is_parameters_cell(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and "parameters" in cell["metadata"].get("tags", [])


# --------------------------------------------------------------------------- papermill
KERNEL_LOG = "kernel.log"  # the papermill kernel's own stderr (its warnings, and its tracebacks on Ctrl-C)


def _kernel_manager(log_path: Path) -> type:
    """A kernel manager class whose kernel writes its stderr to `log_path`, not to the terminal: on Ctrl-C the
    kernel would print zmq tracebacks of its closed sockets over the runner's one-line message."""
    from jupyter_client.manager import AsyncKernelManager  # deferred: optional, like papermill

    class RunFolderKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            with open(log_path, "ab") as log:  # the kernel keeps its own copy of the descriptor
                kw.setdefault("stderr", log)
                return await super()._async_launch_kernel(kernel_cmd, **kw)

    return RunFolderKernelManager


@contextlib.contextmanager
def _client_log(log_path: Path):
    """papermill's logger (nbclient logs through it) writes to `log_path` while a notebook runs: on Ctrl-C the
    kernel can die before the runner sees the interrupt, and "Kernel died while waiting for execute reply"
    would reach the terminal beside the runner's one line (it stays in the run folder's kernel.log)."""
    log = logging.getLogger("papermill")
    handler = logging.FileHandler(log_path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s papermill %(levelname)s: %(message)s"))
    propagate = log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
        handler.close()


def run_papermill(notebook: str, folder: Path, parameters: dict, timeout: float | None, progress: bool,
                  start_timeout: float, cwd: str) -> None:
    """papermill into folder/executed.ipynb (the kernel's stderr and papermill's log into folder/kernel.log);
    raises papermill's errors (they carry ename/evalue/exec_count)."""
    import papermill as pm  # deferred: optional (absent on GPU machines without Jupyter; `--engine exec` there)
    with _client_log(folder / KERNEL_LOG):
        pm.execute_notebook(notebook, str(folder / EXECUTED["papermill"]), parameters=parameters,
                            kernel_name="python3", progress_bar=progress, execution_timeout=timeout,
                            start_timeout=start_timeout, cwd=cwd,
                            kernel_manager_class=_kernel_manager(folder / KERNEL_LOG))


# --------------------------------------------------------------------------- exec: the parent side
def _events(pipe, out: queue.Queue) -> None:
    """Reader thread: the child's event lines (JSON) onto `out`; None at end of file (the child is gone)."""
    with pipe:
        for line in pipe:
            try:
                out.put(json.loads(line))
            except ValueError:
                continue
    out.put(None)


def _kill(proc: subprocess.Popen) -> None:
    """The child and whatever it started (data-loader workers): it leads its own process group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def run_exec(notebook: str, folder: Path, parameters: dict, timeout: float | None, progress: bool,
             start_timeout: float, cwd: str) -> None:
    """The notebook's code cells in a fresh subprocess; its stdout and stderr go to folder/executed.log.

    Raises ExecError: the cell's exception (`ename`, `evalue`, cell number), `CellTimeoutError` when one cell
    runs longer than `timeout` seconds, `DeadKernelError` when the process dies without reporting.
    """
    log_path = folder / EXECUTED["exec"]
    read_fd, write_fd = os.pipe()
    env = os.environ.copy()
    # the child imports this very package (not another install), and draws figures off-screen
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("PYTHONUNBUFFERED", "1")
    cmd = [sys.executable, "-m", "mintkit.batch.engines", str(Path(notebook).resolve()), str(write_fd)]
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                pass_fds=(write_fd,), start_new_session=True, text=True)
    os.close(write_fd)
    events: queue.Queue = queue.Queue()
    threading.Thread(target=_events, args=(os.fdopen(read_fd, encoding="utf-8"), events), daemon=True).start()
    bar = None
    try:
        proc.stdin.write(json.dumps(parameters))  # the values to inject (JSON: any size, no quoting)
        proc.stdin.close()
        cell, limit = None, start_timeout  # until the first event: the process must start and read the notebook
        while True:
            try:
                ev = events.get(timeout=limit)
            except queue.Empty:
                _kill(proc)
                if cell is None:
                    raise ExecError("DeadKernelError", f"the run's process did not start within {start_timeout:g} s")
                raise ExecError("CellTimeoutError", f"the cell ran longer than {timeout:g} s and was stopped",
                                cell) from None
            if ev is None:  # end of the pipe without 'done' or 'error': the process died (os._exit, killed, OOM)
                rc = proc.wait()
                raise ExecError("DeadKernelError", f"the run's process exited with code {rc}"
                                + ("" if cell else " before the first cell"), cell)
            if ev["event"] == "start":
                cell, limit = ev["cell"], timeout
                if progress and bar is None:
                    bar = tqdm(total=ev["of"], desc="cells", unit="cell", leave=False)
                if bar is not None:
                    bar.update(1)
            elif ev["event"] == "error":
                raise ExecError(ev["ename"], ev["evalue"], ev.get("cell"), ev.get("traceback", ""))
            elif ev["event"] == "done":
                break
        try:
            proc.wait(timeout=30)  # a finished notebook leaves at once; a lingering thread must not hang the batch
        except subprocess.TimeoutExpired:
            pass
    finally:
        if bar is not None:
            bar.close()
        _kill(proc)


def run(engine: str, notebook: str, folder: Path, parameters: dict, timeout: float | None = None,
        progress: bool = True, start_timeout: float = 120, cwd: str | None = None) -> Path:
    """Execute `notebook` with `parameters` injected into `folder` (which exists); returns the executed
    artefact's path (it may be missing when the run failed early). Raises on a failing notebook."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    fn = run_papermill if engine == "papermill" else run_exec
    fn(notebook, Path(folder), parameters, timeout, progress, start_timeout, cwd or os.getcwd())
    return Path(folder) / EXECUTED[engine]


# --------------------------------------------------------------------------- exec: the child side
def display(*objs: Any, **_kwargs: Any) -> None:
    """Jupyter's `display` as text: a DataFrame (or a Styler's frame) in full, anything else as its repr."""
    for obj in objs:
        data = getattr(obj, "data", None) if type(obj).__name__ == "Styler" else None
        if data is not None and hasattr(data, "to_string"):
            obj = data
        if isinstance(obj, str):
            print(obj)
        elif hasattr(obj, "to_string"):
            print(obj.to_string())
        else:
            print(repr(obj))


MAGIC_PREFIXES = ("%", "!")


def compile_cells(notebook: str) -> list[tuple[int, bool, Any]]:
    """[(code cell number, is the parameters cell, code object)] of every code cell; ExecError naming the cell
    for IPython-only syntax (`%magic`, `!shell`) or any other syntax error, before any cell runs."""
    cells = [c for c in read_cells(notebook) if c.get("cell_type") == "code"]
    name = Path(notebook).name
    out = []
    for k, c in enumerate(cells, 1):
        src = c["source"]
        magic = [ln.strip() for ln in src.splitlines() if ln.lstrip().startswith(MAGIC_PREFIXES)]
        filename = f"<{name} code cell {k}>"
        try:
            code = compile(src, filename, "exec")
        except SyntaxError as e:
            if magic:
                raise ExecError("UnsupportedCellError",
                                f"{name} code cell {k} uses IPython-only syntax ({magic[0]!r}); the exec engine runs "
                                "plain Python: rewrite the line in Python or use --engine papermill", k) from None
            raise ExecError("SyntaxError", f"{name} code cell {k}, line {e.lineno}: {e.msg}", k) from None
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)  # source lines in tracebacks
        out.append((k, is_parameters_cell(c), code))
    return out


def cell_source(code) -> str:
    """The source of a code object compile_cells made (kept in linecache for tracebacks)."""
    entry = linecache.cache.get(code.co_filename)
    return "".join(entry[2]) if entry else ""


def _cell_traceback(exc: BaseException) -> str:
    """The traceback from the cell's own frame down (this module's exec frame left out)."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    return "".join(traceback.format_exception(type(exc), exc, tb))[-4000:]


def _orphan_watch(parent: int, every_s: float = 1.0) -> None:
    """Daemon thread: when the runner dies without stopping this run (SIGKILL, SIGTERM), end this process
    group (the run and any workers it started) rather than keep a GPU busy for nobody."""
    while True:
        time.sleep(every_s)
        if os.getppid() != parent:
            if os.getpgrp() == os.getpid():  # run_exec made this process a group leader: its group is the run's
                os.killpg(0, signal.SIGKILL)
            os._exit(1)


def child_main(notebook: str, events_fd: int) -> int:
    """Run the notebook's code cells with the parameters read from stdin (JSON); report on `events_fd`."""
    threading.Thread(target=_orphan_watch, args=(os.getppid(),), daemon=True).start()
    events = os.fdopen(events_fd, "w", buffering=1, encoding="utf-8")

    def send(**ev: Any) -> None:
        events.write(json.dumps(ev, default=str) + "\n")

    parameters = json.loads(sys.stdin.read())
    try:
        cells = compile_cells(notebook)
    except ExecError as e:
        print(f"{e.ename}: {e.evalue}", file=sys.stderr)
        send(event="error", ename=e.ename, evalue=e.evalue, cell=e.exec_count)
        return 1
    except ValueError as e:
        send(event="error", ename="NotebookError", evalue=str(e))
        return 1
    # `In`: the cells' sources in the order run, as IPython keeps them (Params.from_notebook reads the names the
    # parameters cells set from it); the injected parameters appear as papermill's injected cell would
    injected = "# Parameters\n" + "\n".join(f"{n} = {v!r}" for n, v in parameters.items())
    ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins, "display": display, "In": [""]}
    if not any(is_params for _k, is_params, _c in cells):  # papermill injects at the top then
        ns.update(parameters)
        ns["In"].append(injected)
    for k, is_params, code in cells:
        send(event="start", cell=k, of=len(cells))
        print(f"\n##### code cell {k}/{len(cells)}", flush=True)
        try:
            ns["In"].append(cell_source(code))
            exec(code, ns)  # noqa: S102 - running the notebook is the point
            if is_params:  # papermill's injected cell comes right after the parameters cell
                print("##### injected parameters\n" + injected.split("\n", 1)[1])
                ns.update(parameters)  # the values themselves, as JSON carried them (inf and nan too)
                ns["In"].append(injected)
        except BaseException as e:  # noqa: BLE001 - SystemExit and KeyboardInterrupt end the run as failures too
            tb = _cell_traceback(e)
            print(tb, file=sys.stderr, flush=True)
            evalue = str(e).strip().splitlines()[0] if str(e).strip() else ""
            send(event="error", ename=type(e).__name__, evalue=evalue, cell=k, traceback=tb)
            return 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    send(event="done")
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1], int(sys.argv[2])))
