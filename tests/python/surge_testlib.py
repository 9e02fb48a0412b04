"""Helpers for the Python client tests: a real surge-server process on loopback
(ephemeral port, a SQLite file in a temp dir) and the `surge` CLI.

Paths come from the environment set by tests/python/CMakeLists.txt:
SURGE_SERVER_BIN, SURGE_CLI_BIN, SURGE_SOURCE_DIR."""
import csv
import io
import os
import signal
import sqlite3
import subprocess
import tempfile
import time

SERVER_BIN = os.environ.get("SURGE_SERVER_BIN", "build/server/surge-server")
CLI_BIN = os.environ.get("SURGE_CLI_BIN", "build/client/surge")
SOURCE_DIR = os.environ.get("SURGE_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


class Server:
    """surge-server on 127.0.0.1; start() picks a free port the first time and
    reuses it on restarts (same port, same database file)."""

    def __init__(self, workdir=None, extra_args=()):
        self.extra_args = list(extra_args)  # more surge-server flags (tokens, TLS)
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="surge-pytest-")
            workdir = self._tmp.name
        self.dir = workdir
        self.db = os.path.join(workdir, "surge.db")
        self.port_file = os.path.join(workdir, "port")
        self.http_port_file = os.path.join(workdir, "http_port")
        self.port = 0
        self.proc = None
        self.starts = 0

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=30.0):
        if os.path.exists(self.port_file):
            os.remove(self.port_file)
        log = open(os.path.join(self.dir, f"server-{self.starts}.log"), "wb")
        self.starts += 1
        self.proc = subprocess.Popen(
            [SERVER_BIN, f"--listen=127.0.0.1:{self.port}", f"--port_file={self.port_file}",
             f"--db={self.db}", "--shutdown_grace_s=2", "--http=127.0.0.1:0",
             f"--http_port_file={self.http_port_file}", *self.extra_args,
             # SURGE_TEST_DB=postgresql://...: the same tests on a PostgreSQL
             # database (a fresh one per test module; the later --db wins).
             *([f"--db={os.environ['SURGE_TEST_DB']}"] if os.environ.get("SURGE_TEST_DB") else [])],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"surge-server exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            try:
                with open(self.port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    return self
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"surge-server did not write {self.port_file} in {timeout} s")

    @property
    def http_address(self):
        """127.0.0.1:PORT of the HTTP API and dashboard of the running server."""
        with open(self.http_port_file) as f:
            return f"127.0.0.1:{int(f.read().strip())}"

    def log_tail(self, n=2000):
        out = []
        for i in range(self.starts):
            with open(os.path.join(self.dir, f"server-{i}.log"), "rb") as f:
                out.append(f.read()[-n:].decode(errors="replace"))
        return "\n".join(out)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill9(self):
        """SIGKILL, and wait until the process is gone (its port is free then)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def db_records(self, job, run):
        """{step: row} read straight from the SQLite file (server stopped)."""
        con = sqlite3.connect(self.db)
        try:
            rows = con.execute(
                "SELECT r.step, r.examples, r.lr, r.loss, r.eval_loss, r.grad_sq_small,"
                " r.grad_sq_big, r.b_small, r.b_big FROM records r"
                " JOIN runs u ON u.id = r.run_id JOIN jobs j ON j.id = u.job_id"
                " WHERE j.name = ? AND u.name = ?", (job, run)).fetchall()
        finally:
            con.close()
        return {r[0]: r for r in rows}


def cli(server, *args, check=True, timeout=60):
    """Runs the `surge` CLI against `server`; returns the CompletedProcess."""
    p = subprocess.run([CLI_BIN, "--server", server.address if hasattr(server, "address")
                        else server, *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"surge {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def cli_records(server, job, run=None):
    """`surge records JOB [--run RUN] --format csv`, parsed: list of dicts."""
    args = ["records", job, "--format", "csv"] + (["--run", run] if run else [])
    return list(csv.DictReader(io.StringIO(cli(server, *args).stdout)))


def expected_csv_row(run, batch_size, rec):
    """The CSV row `surge records` writes for a record passed to Reporter.log()
    (numbers compared as values: the CLI writes shortest round-trip doubles)."""
    g = rec.get("grad_stats")
    return {
        "run": run, "step": rec["step"], "examples": rec["examples_seen"],
        "batch_size": batch_size, "lr": float(rec["lr"]), "loss": float(rec["loss"]),
        "eval_loss": None if rec.get("eval_loss") is None else float(rec["eval_loss"]),
        "grad_sq_small": None if g is None else float(g[0]),
        "grad_sq_big": None if g is None else float(g[1]),
        "b_small": None if g is None else int(g[2]),
        "b_big": None if g is None else int(g[3]),
    }


def parse_csv_row(row):
    def f(k):
        return float(row[k]) if row.get(k, "") != "" else None

    def i(k):
        return int(row[k]) if row.get(k, "") != "" else None
    return {"run": row["run"], "step": int(row["step"]), "examples": int(row["examples"]),
            "batch_size": int(row["batch_size"]), "lr": float(row["lr"]),
            "loss": float(row["loss"]), "eval_loss": f("eval_loss"),
            "grad_sq_small": f("grad_sq_small"), "grad_sq_big": f("grad_sq_big"),
            "b_small": i("b_small"), "b_big": i("b_big")}
