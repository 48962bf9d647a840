"""A warm interpreter for stage processes: a fork server that has already imported the heavy libraries.

Every DVC stage is its own ``python stages/<x>.py`` process, and on the 2-core CPU each one paid ~6-10 s
before doing any work: ``import torch`` (~3.2 s), torch's ``import torch._dynamo`` (~2.7 s; pulled in by
torchvision and by the first ``Optimizer.step``), torch-fidelity, scikit-learn, matplotlib.  Over the
default pipeline's ~50 stages that was 5+ minutes of a run.

With ``GENDA_WARM=1`` (``make repro`` sets it) :func:`handoff`, called by :func:`genda.runtime.stage.run` before a
stage does anything, sends the stage to a server process instead of running it here::

    dvc -> python stages/train_gan.py dcgan (client: no torch import)
             | unix socket: argv, cwd, environment + the client's stdin/stdout/stderr file descriptors
             v
           server (torch, torchvision, torch._dynamo, torch-fidelity, ... imported once; no torch op run)
             | fork()
             v
           monitor -- fork() --> worker: chdir, environment, argv, fds of the client; runs the script
             |                      exactly as ``python stages/train_gan.py dcgan`` would (runpy, __main__)
             +-- waits for the worker, sends its exit status to the client (which exits with it);
                 the client forwards SIGINT / SIGTERM to the worker's main thread, a client that vanishes kills it.

Only third-party libraries are pre-imported: genda itself is imported fresh by every worker, so an edited
``src/genda`` is always the code that runs.  The one exception is done and undone at start-up: the server opens the
project's MLflow store (:func:`genda.runtime.tracking.warm_store`, its connections closed again) and drops the genda
modules imported for it, so each stage's MLflow helper (a fork of the worker) finds the store built: ~0.02 s
instead of ~0.6-0.9 s of CPU per stage for SQLAlchemy's engine and MLflow's schema check.  The worker re-applies
the stage's thread count (:func:`genda.runtime.threads.thread_count`) with ``torch.set_num_threads``.  The server pins the
same thread count before importing (so numpy's BLAS pool has the size a fresh stage would give it) and never runs a
torch operation: torch's OpenMP pool is first started by each worker.  This is the fork model of torch's own
DataLoader workers (fork after import, before parallel work); libraries whose thread pools are not fork-safe
(OpenCV) are not pre-imported.  Results are bit-identical to a fresh process (``tests/test_warm.py``): stages seed
every generator they use from params.

The first stage of a run finds no server: it starts one in the background (``python -m genda.runtime.forkserver serve``,
log in ``<socket>.log``) and runs itself directly; later stages use the server once it is ready.  The server
exits after ``GENDA_WARM_IDLE`` seconds (default 120) without a stage, or on ``python -m genda.runtime.forkserver stop``.
Its socket lives in ``$GENDA_WARM_DIR`` (default: the system temp dir), named after the interpreter, the
genda source folder, ``PYTHONPATH`` and the installed torch, so a different checkout or venv gets its own.
Anything unexpected on the client side (no server, a refused connection, a distributed ``GENDA_NPROC > 1``
run, a worker already) means the stage simply runs in its own process, as without ``GENDA_WARM``.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

__all__ = ["enabled", "socket_path", "handoff", "serve", "stop", "PRELOAD"]

#: imported by the server before it accepts stages (missing ones are skipped)
PRELOAD = ("numpy", "yaml", "PIL.Image", "tqdm", "torch", "torch.nn", "torch.optim", "torch._dynamo",
           "torchvision", "torch_fidelity", "pandas", "matplotlib", "sklearn.manifold", "mlflow.tracking",
           "mlflow.entities")
CHILD_ENV = "GENDA_WARM_CHILD"
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _signal_stage(pid: int, sig: int) -> None:
    """Deliver ``sig`` to the worker's main thread (Linux ``tgkill``), where Python runs signal handlers.

    A process-directed ``kill()`` may land on another of the worker's threads (a sleeping test stage already has two,
    ``/proc/<pid>/task``; training stages have torch's pool threads); the main thread, if blocked in a system call (a sleep, a socket, a lock), is then not interrupted and
    sees the signal only when that call returns: a Ctrl-C that waits. Elsewhere, or if ``tgkill`` fails: ``kill``."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.tgkill(pid, pid, int(sig)) == 0:
            return
    except (OSError, AttributeError):
        pass
    os.kill(pid, sig)


def enabled() -> bool:
    return os.environ.get("GENDA_WARM", "0") not in ("", "0", "false", "no") and CHILD_ENV not in os.environ


def _key() -> str:
    import importlib.util

    genda_dir = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.find_spec("torch")
    torch_stamp = ""
    if spec and spec.origin:
        try:
            torch_stamp = str(os.stat(spec.origin).st_mtime_ns)
        except OSError:
            pass
    from genda.runtime.threads import thread_count

    raw = "\0".join([os.path.realpath(sys.executable), genda_dir, os.environ.get("PYTHONPATH", ""), torch_stamp,
                     str(thread_count())])
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def socket_path() -> str:
    """The server's unix socket (beside it: ``.lock``, ``.log``); in ``/tmp``, named after the folder too, when the
    folder's path is too long for a socket (AF_UNIX: 107 bytes)."""
    folder = os.path.abspath(os.environ.get("GENDA_WARM_DIR") or tempfile.gettempdir())
    path = os.path.join(folder, f"genda-warm-{os.getuid()}-{_key()}.sock")
    if len(path.encode()) <= 100:
        return path
    tag = hashlib.sha1(folder.encode()).hexdigest()[:8]
    return os.path.join("/tmp", f"genda-warm-{os.getuid()}-{_key()}-{tag}.sock")


# --------------------------------------------------------------------------- framing
def _send(sock: socket.socket, obj) -> None:
    data = json.dumps(obj).encode()
    sock.sendall(struct.pack("!I", len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def _recv(sock: socket.socket):
    (n,) = struct.unpack("!I", _recv_exact(sock, 4))
    return json.loads(_recv_exact(sock, n))


# --------------------------------------------------------------------------- client
def _start_server(path: str) -> None:
    try:  # a server that failed to start in the last 10 minutes is not retried by every stage
        if time.time() - os.stat(path + ".failed").st_mtime < 600:
            return
    except OSError:
        pass
    log = open(path + ".log", "ab")
    subprocess.Popen([sys.executable, "-m", "genda.runtime.forkserver", "serve"], stdin=subprocess.DEVNULL, stdout=log,
                     stderr=log, process_group=0, close_fds=True,  # same session: same CPU autogroup
                     env={k: v for k, v in os.environ.items() if k != CHILD_ENV})
    log.close()


def handoff(script: str | None = None) -> None:
    """Run this stage process in the warm server and exit with its status; return (run here) when that is
    not possible.  ``script``: the stage file (default ``sys.argv[0]``)."""
    if not enabled() or int(os.environ.get("GENDA_NPROC", "1") or 1) > 1 or "LOCAL_RANK" in os.environ:
        return
    script = os.path.abspath(script or sys.argv[0])
    if not os.path.isfile(script):
        return
    path = socket_path()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ignored = [int(sig) for sig in _FORWARDED if signal.getsignal(sig) == signal.SIG_IGN]
    # The worker may start (and print) before its pid reaches us: a signal in that window is held, then
    # forwarded, instead of interrupting this client half-way (an ignored signal stays ignored, as for a
    # process run here).
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, f: pending.append(s))
                for sig in _FORWARDED if int(sig) not in ignored}
    try:
        sock.connect(path)
        sys.stdout.flush(); sys.stderr.flush()
        req = json.dumps({"script": script, "argv": [script, *sys.argv[1:]], "cwd": os.getcwd(),
                          "env": dict(os.environ), "ignored_signals": ignored}).encode()
        socket.send_fds(sock, [struct.pack("!I", len(req)) + req], [0, 1, 2])
        pid = _recv(sock)["pid"]
    except (OSError, EOFError, ValueError, KeyError):
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in pending:  # delivered again, now to this process as it would have been
            os.kill(os.getpid(), sig)
        try:
            _start_server(path)
        except OSError:
            pass
        return
    forward = lambda sig, frame: _signal_stage(pid, sig)  # noqa: E731
    for sig in previous:
        signal.signal(sig, forward)
    for sig in pending:
        _signal_stage(pid, sig)
    try:
        code = _recv(sock)["status"]
    except (OSError, EOFError, ValueError, KeyError):
        code = 1
    os._exit(code if code >= 0 else 128 - code)


def stop() -> bool:
    """Ask this checkout's server to exit; True if one was running."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(socket_path())
        socket.send_fds(sock, [struct.pack("!I", 2) + b"{}"], [])
        sock.close()
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- server
def _preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - a library missing here is imported by the worker (or not needed)
            print(f"[genda.runtime.forkserver] preload {name}: {type(e).__name__}: {e}", flush=True)
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].use("Agg")


def _warm_tracking() -> str:
    """Open the project's MLflow store here, once (:func:`genda.runtime.tracking.warm_store`), so that the MLflow helper
    of every stage, a fork of a fork of this server, finds it open.  The genda modules imported for it are
    dropped again, so that every worker still imports genda fresh.  Never fatal: a helper that does not find
    the store open opens it itself.  Returns a line for the log."""
    if "mlflow.tracking" not in sys.modules:
        return ""
    before = set(sys.modules)
    try:
        from genda.runtime.tracking import warm_store

        uri = warm_store()
        line = f"MLflow store open: {uri}" if uri else ""
    except Exception as e:  # noqa: BLE001
        line = f"MLflow store not opened here ({type(e).__name__}: {e})"
    for name in sorted(set(sys.modules) - before, reverse=True):
        if name.startswith("genda."):
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if parent in sys.modules and getattr(sys.modules[parent], child, None) is not None:
                delattr(sys.modules[parent], child)
    return line


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _run_worker(req: dict, fds: list[int]) -> None:
    """In the forked worker: become the stage process described by ``req`` and run it (never returns)."""
    code = 1
    try:
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)
        for sig in _FORWARDED:  # the client's dispositions, not the server's (e.g. SIGINT ignored under `cmd &`)
            ignored = int(sig) in req.get("ignored_signals", [])
            default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
            signal.signal(sig, signal.SIG_IGN if ignored else default)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        os.environ[CHILD_ENV] = "1"
        sys.argv = list(req["argv"])
        sys.path[0] = os.path.dirname(req["script"])
        from genda.runtime.threads import thread_count

        n = thread_count()
        if n > 0 and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(n)
        import runpy

        try:
            runpy.run_path(req["script"], run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if e.code is not None and not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
        except BaseException as e:  # noqa: BLE001 - as the interpreter would: traceback, status 1 (Ctrl-C: 130)
            import traceback

            traceback.print_exc()
            code = 130 if isinstance(e, KeyboardInterrupt) else 1
    finally:
        try:
            sys.stdout.flush(); sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
        os._exit(code)


def _monitor(conn: socket.socket, req: dict, fds: list[int]) -> None:
    """In the forked monitor: fork the worker, report its pid and then its exit status (never returns)."""
    import select

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        conn.close()
        _run_worker(req, fds)
    for fd in fds:
        os.close(fd)
    status = 1
    try:
        _send(conn, {"pid": pid})
        while True:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(raw)
                break
            readable, _, _ = select.select([conn], [], [], 0.2)
            if readable and not conn.recv(1):  # the client is gone: so is the stage
                os.kill(pid, signal.SIGTERM)
        _send(conn, {"status": status})
    except OSError:
        pass
    os._exit(0)


def serve(idle: float | None = None) -> int:
    """The server loop (``python -m genda.runtime.forkserver serve``)."""
    import fcntl
    import select

    idle = float(os.environ.get("GENDA_WARM_IDLE", "120")) if idle is None else idle
    path = socket_path()
    lock = open(path + ".lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server of this checkout is running or starting
    t0 = time.time()
    from genda.runtime.threads import pin_threads_env

    pin_threads_env()
    _preload()
    tracking = _warm_tracking()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        if os.path.exists(path):
            os.unlink(path)
        server.bind(path)
        server.listen(16)
    except OSError as e:
        print(f"[genda.runtime.forkserver] cannot listen on {path}: {e}", flush=True)
        open(path + ".failed", "w").close()
        return 1
    finally:
        os.umask(old)
    try:
        os.unlink(path + ".failed")
    except OSError:
        pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # monitors are reaped automatically
    print(f"[genda.runtime.forkserver] serving on {path} (imports took {time.time() - t0:.1f} s; {_threads()} threads)",
          flush=True)
    if tracking:
        print(f"[genda.runtime.forkserver] {tracking}", flush=True)
    last = time.time()
    try:
        while True:
            if time.time() - last > idle:
                print("[genda.runtime.forkserver] idle: exiting", flush=True)
                return 0
            readable, _, _ = select.select([server], [], [], 1.0)
            if not readable:
                continue
            conn, _ = server.accept()  # a stage, a stop, or a status probe (not activity)
            try:
                msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 8)
                (n,) = struct.unpack("!I", msg[:4])
                body = msg[4:]
                while len(body) < n:
                    chunk = conn.recv(n - len(body))
                    if not chunk:
                        raise EOFError("short request")
                    body += chunk
                req = json.loads(body)
            except (OSError, EOFError, ValueError, struct.error):
                conn.close()
                continue
            if not req:  # stop
                for fd in fds:
                    os.close(fd)
                conn.close()
                print("[genda.runtime.forkserver] stopped", flush=True)
                return 0
            last = time.time()
            if os.fork() == 0:
                server.close()
                _monitor(conn, req, fds)
            conn.close()
            for fd in fds:
                os.close(fd)
    finally:
        server.close()
        try:
            os.unlink(path)
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    cmd = (argv if argv is not None else sys.argv[1:]) or ["status"]
    if cmd[0] == "serve":
        return serve()
    if cmd[0] == "stop":
        print("stopped" if stop() else "no server running")
        return 0
    if cmd[0] == "status":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(socket_path())
            print(f"serving on {socket_path()}")
        except OSError:
            print(f"no server on {socket_path()}")
        finally:
            s.close()
        return 0
    print("usage: python -m genda.runtime.forkserver [serve|stop|status]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
