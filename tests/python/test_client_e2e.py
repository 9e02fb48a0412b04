"""E2E for surge_client against a real surge-server: advise() equals
`surge advise --json`, errors carry the server's code and message, permanent
ingest errors surface on log()/flush()/close(), the bounded buffer drops the
oldest records while the server is gone, and AdviceScheduler applies advice."""
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import unittest

import torch

from surge_client import Reporter, SurgeClient, SurgeError, advise
from surge_client.pytorch import AdviceScheduler
from surge_testlib import SOURCE_DIR, Server, cli, cli_records, parse_csv_row

SWEEP_JOB = "sweep"


class ClientE2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().start()
        cls.client = SurgeClient(cls.server.address)
        # A synthetic probe sweep, imported with the CLI, gives the job a fit.
        cls.tmp = tempfile.TemporaryDirectory(prefix="surge-sweep-")
        subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "scripts", "gen_probe_sweep.py"),
                        "--out-dir", cls.tmp.name], check=True, capture_output=True)
        for f in ("base.csv", "probes.csv"):
            cli(cls.server, "import", "--job", SWEEP_JOB, os.path.join(cls.tmp.name, f))

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        cls.tmp.cleanup()

    # -- advice --------------------------------------------------------------
    def cli_advise(self, batch, step=None):
        args = ["advise", "--job", SWEEP_JOB, "--batch", repr(batch), "--json"]
        if step is not None:
            args += ["--step", str(step)]
        return json.loads(cli(self.server, *args).stdout)

    def test_advise_matches_cli(self):
        for batch, step in [(64, None), (16, None), (512, None), (64, 1500), (256, 300)]:
            for _ in range(5):  # a refit may land between the two calls: retry
                mine = advise(SWEEP_JOB, batch, step, server=self.server.address)
                theirs = self.cli_advise(batch, step)
                if int(theirs["fitVersion"]) == mine.fit_version:
                    break
                time.sleep(0.5)
            with self.subTest(batch=batch, step=step):
                self.assertEqual(int(theirs["fitVersion"]), mine.fit_version)
                self.assertEqual(mine.lr, float(theirs["lr"]))
                self.assertTrue(math.isfinite(mine.lr) and mine.lr > 0)
                self.assertEqual(mine.lr_ci95, (float(theirs["lrCi95"]["lo"]),
                                                float(theirs["lrCi95"]["hi"])))
                self.assertLessEqual(mine.lr_ci95[0], mine.lr)
                self.assertLessEqual(mine.lr, mine.lr_ci95[1])
                # The prediction interval holds the curve-only interval.
                self.assertEqual(mine.lr_curve_ci95, (float(theirs["lrCurveCi95"]["lo"]),
                                                      float(theirs["lrCurveCi95"]["hi"])))
                self.assertLessEqual(mine.lr_ci95[0], mine.lr_curve_ci95[0] * (1 + 1e-12))
                self.assertLessEqual(mine.lr_curve_ci95[0], mine.lr)
                self.assertLessEqual(mine.lr, mine.lr_curve_ci95[1])
                self.assertLessEqual(mine.lr_curve_ci95[1], mine.lr_ci95[1] * (1 + 1e-12))
                self.assertEqual(mine.b_noise, float(theirs["bNoise"]))
                self.assertEqual(mine.recommended_batch_size,
                                 float(theirs["recommendedBatchSize"]))
                self.assertEqual(mine.b_noise_kind,
                                 theirs["bNoiseKind"].replace("B_NOISE_KIND_", "").lower())
                self.assertEqual(mine.step, step)
                self.assertEqual(mine.batch_size, batch)
                want_flags = {k for k, v in theirs.get("flags", {}).items() if v}
                self.assertEqual({self.camel(f) for f in mine.flags}, want_flags)

    @staticmethod
    def camel(name):
        head, *rest = name.split("_")
        return head + "".join(w.title() for w in rest)

    def test_advise_errors_carry_code_and_message(self):
        cases = [("no-such-job", 64, None, "NOT_FOUND"),
                 (SWEEP_JOB, 0, None, "INVALID_ARGUMENT"),
                 (SWEEP_JOB, 64, -1, "INVALID_ARGUMENT")]
        self.client.create_job("empty-job")
        cases.append(("empty-job", 64, None, "FAILED_PRECONDITION"))
        for job, batch, step, code in cases:
            with self.subTest(job=job, batch=batch, step=step):
                with self.assertRaises(SurgeError) as cm:
                    self.client.advise(job, batch, step)
                self.assertEqual(cm.exception.code, code)
                self.assertTrue(cm.exception.details)
                if step is None and batch > 0:  # the CLI rejects these itself
                    args = ["advise", "--job", job, "--batch", str(batch)]
                    p = cli(self.server, *args, check=False)
                    self.assertEqual(p.returncode, 1)
                    self.assertEqual(p.stderr.splitlines()[0], str(cm.exception))

    # -- reporter ------------------------------------------------------------
    def test_client_side_validation_raises_at_once(self):
        with Reporter("validate", "r", 8, server=self.server.address) as rep:
            for kwargs in [dict(step=0, loss=math.nan, lr=1e-3),
                           dict(step=-1, loss=1.0, lr=1e-3),
                           dict(step=0, loss=1.0, lr=-1.0),
                           dict(step=0, loss=1.0, lr=1e-3, batch_size=16),
                           dict(step=0, loss=1.0, lr=1e-3, grad_stats=(1.0, 0.5, 8, 8))]:
                with self.assertRaises(ValueError, msg=str(kwargs)):
                    rep.log(**kwargs)
            rep.log(step=0, loss=1.0, lr=1e-3)
            rep.flush()
            self.assertEqual(rep.stats().logged, 1)
            self.assertEqual(rep.stats().acked, 1)

    def test_rerun_is_idempotent_and_unit_checked(self):
        for attempt in range(2):
            with Reporter("again", "bs32", 32, server=self.server.address) as rep:
                for s in range(50):
                    rep.log(step=s, loss=1.0 / (s + 1), lr=1e-3)
            st = rep.stats()
            self.assertEqual((st.stored, st.duplicate), (50, 0) if attempt == 0 else (0, 50))
        self.assertEqual(len(cli_records(self.server, "again")), 50)
        with self.assertRaises(SurgeError) as cm:
            Reporter("again", "bs32", 32, server=self.server.address, unit="tokens")
        self.assertEqual(cm.exception.code, "ALREADY_EXISTS")
        with self.assertRaises(SurgeError) as cm:
            Reporter("again", "bs32", 64, server=self.server.address)
        self.assertEqual(cm.exception.code, "ALREADY_EXISTS")

    def test_server_invalid_argument_surfaces(self):
        rep = Reporter("server-validates", "r", 8, server=self.server.address, validate=False)
        for s in range(10):
            rep.log(step=s, loss=1.0, lr=1e-3)
        rep.flush()
        rep.log(step=10, loss=math.nan, lr=1e-3)
        with self.assertRaises(SurgeError) as cm:
            rep.flush(30)
        e = cm.exception
        self.assertEqual(e.code, "INVALID_ARGUMENT")
        self.assertIn("loss", e.details)
        self.assertIn("batch seq", e.details)
        with self.assertRaises(SurgeError) as again:
            rep.log(step=11, loss=1.0, lr=1e-3)
        self.assertIs(again.exception, e)
        with self.assertRaises(SurgeError):
            rep.close()
        rows = cli_records(self.server, "server-validates")
        self.assertEqual([int(r["step"]) for r in rows], list(range(10)))

    def test_deleted_job_surfaces_not_found(self):
        rep = Reporter("doomed", "r", 8, server=self.server.address, linger=0.01)
        rep.log(step=0, loss=1.0, lr=1e-3)
        rep.flush()
        cli(self.server, "job", "delete", "doomed")
        deadline = time.monotonic() + 30
        step = 1
        while rep.error is None and time.monotonic() < deadline:
            rep.log(step=step, loss=1.0, lr=1e-3)
            step += 1
            time.sleep(0.005)
        self.assertIsNotNone(rep.error)
        self.assertEqual(rep.error.code, "NOT_FOUND")
        with self.assertRaises(SurgeError) as cm:
            rep.log(step=step, loss=1.0, lr=1e-3)
        self.assertEqual(cm.exception.code, "NOT_FOUND")
        self.assertTrue(cm.exception.details)
        with self.assertRaises(SurgeError):
            rep.close()

    def test_buffer_drops_oldest_while_server_is_gone(self):
        srv = Server().start()
        try:
            rep = Reporter("overflow", "r", 4, server=srv.address, max_buffered=50,
                           batch_records=10, linger=0.01)
            for s in range(20):
                rep.log(step=s, loss=1.0, lr=1e-3)
            rep.flush()
            srv.kill9()
            worst = 0.0
            for s in range(20, 520):
                t0 = time.perf_counter()
                rep.log(step=s, loss=float(s), lr=1e-3)
                worst = max(worst, time.perf_counter() - t0)
                if s % 50 == 0:
                    time.sleep(0.02)  # let the sender seal batches now and then
            st = rep.stats()
            self.assertLess(worst, 0.1)
            self.assertEqual(st.logged, 520)
            self.assertEqual(st.acked, 20)
            self.assertLessEqual(st.buffered, 50)
            self.assertGreaterEqual(st.dropped, 450)
            self.assertEqual(st.acked + st.dropped + st.buffered, st.logged)
            kept = st.buffered
            srv.start()
            rep.close(timeout=60)
            st = rep.stats()
            self.assertEqual(st.acked, 20 + kept)
            steps = set(int(r["step"]) for r in cli_records(srv, "overflow"))
            want = set(range(20)) | set(range(520 - kept, 520))
            self.assertLessEqual(want, steps)  # nothing kept was lost
            # A dropped batch that gRPC already held for the waiting stream may
            # still arrive: at most one batch (10 records) beyond what was kept.
            self.assertLessEqual(len(steps - want), 10)
        finally:
            srv.stop()

    def test_unclosed_reporter_is_flushed_at_exit(self):
        script = (
            "import sys\n"
            "from surge_client import Reporter\n"
            "rep = Reporter('atexit', 'r', 8, server=sys.argv[1], linger=60)\n"
            "for s in range(100):\n"
            "    rep.log(step=s, loss=1.0, lr=1e-3)\n")  # no close(): the atexit hook flushes
        subprocess.run([sys.executable, "-c", script, self.server.address], check=True,
                       timeout=60)
        self.assertEqual(len(cli_records(self.server, "atexit")), 100)

    def test_docs_example_runs(self):
        p = subprocess.run(
            [sys.executable, os.path.join(SOURCE_DIR, "docs", "examples",
                                          "pytorch_fashion_mnist.py"),
             "--server", self.server.address, "--job", "example", "--steps", "40",
             "--advise-every", "10"], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("no advice yet: FAILED_PRECONDITION", p.stdout)
        rows = [parse_csv_row(r) for r in cli_records(self.server, "example")]
        self.assertEqual([r["step"] for r in rows], list(range(40)))
        self.assertTrue(all(r["b_big"] == 64 and r["b_small"] == 32 for r in rows))
        runs = self.client.list_runs("example")
        self.assertEqual([(r.name, r.batch_size, r.optimizer.name) for r in runs],
                         [("mlp-bs64", 64, "adam")])

    # -- applying advice -----------------------------------------------------
    def test_advice_scheduler_sets_param_group_lrs(self):
        w1, w2 = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
        opt = torch.optim.SGD([{"params": [w1], "lr": 1.0}, {"params": [w2], "lr": 0.5}])
        sched = AdviceScheduler(opt, SWEEP_JOB, 64, every=10, client=self.client,
                                use_step=False)
        try:
            self.assertIsNone(sched.step(0))     # asks in the background
            deadline = time.monotonic() + 30
            applied = None
            step = 1
            while applied is None and time.monotonic() < deadline:
                applied = sched.step(step)
                step += 1
                time.sleep(0.01)
            want = self.client.advise(SWEEP_JOB, 64).lr
            self.assertIsNotNone(applied, sched.last_error)
            self.assertEqual(opt.param_groups[0]["lr"], want)
            self.assertEqual(opt.param_groups[1]["lr"], want * 0.5)
        finally:
            sched.close()
        # No fit: the LR stays, the error is kept.
        self.client.ensure_job("no-fit")
        sched = AdviceScheduler(opt, "no-fit", 64, every=1, client=self.client)
        try:
            sched.step(0)
            deadline = time.monotonic() + 30
            while sched.last_error is None and time.monotonic() < deadline:
                sched.step(1)
                time.sleep(0.01)
            self.assertEqual(sched.last_error.code, "FAILED_PRECONDITION")
            self.assertEqual(opt.param_groups[0]["lr"], want)
        finally:
            sched.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
