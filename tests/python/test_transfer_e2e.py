"""E2E of the LR transfer ("my LR is tuned at batch B0; what at B?") against a
real surge-server: a plain-run sweep from a known surge law (gen_records.py
--lrs: B_noise 64, eps_max 2e-3) imported with `surge import`; the transfer
from the Python client, the CLI (`surge advise --from B0:LR0 --json`) and the
HTTP API (/advice?ref_batch_size=&ref_lr=) agree; it equals lr0 times the
ratio of the job's own advice at B and B0; the two rules of thumb sit beside
it; bad references get INVALID_ARGUMENT naming the field; AdviceScheduler
scales its LR at a batch-size switch."""
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import torch

from surge_client import SurgeClient, SurgeError, advise
from surge_client.pytorch import AdviceScheduler
from surge_testlib import SOURCE_DIR, Server, cli

JOB = "transfer-sweep"


class TransferE2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().start()
        cls.client = SurgeClient(cls.server.address)
        cls.tmp = tempfile.TemporaryDirectory(prefix="surge-transfer-")
        sweep = os.path.join(cls.tmp.name, "sweep.csv")
        with open(sweep, "w") as f:
            subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "scripts", "gen_records.py"),
                            "--runs", "5", "--lrs", "5", "--steps", "600", "--eval-every", "5"],
                           check=True, stdout=f)
        cli(cls.server, "import", "--job", JOB, sweep)
        deadline = time.time() + 30
        while True:
            try:
                cls.client.advise(JOB, 256)
                break
            except SurgeError as e:
                if e.code != "FAILED_PRECONDITION" or time.time() > deadline:
                    raise
                time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        cls.tmp.cleanup()

    def test_transfer_is_lr0_times_the_fitted_ratio(self):
        for b0, lr0, b in [(64, 3e-3, 256), (256, 1e-3, 1024), (1024, 5e-4, 64)]:
            with self.subTest(b0=b0, b=b):
                a = self.client.advise(JOB, b, reference=(b0, lr0))
                at_b0 = self.client.advise(JOB, b0)
                t = a.transfer
                self.assertIsNotNone(t)
                self.assertEqual(a.fit_version, at_b0.fit_version)
                # Same stage, same weights: the ratio of the job's own advice.
                self.assertAlmostEqual(math.log(t.ratio), math.log(a.lr / at_b0.lr), places=9)
                self.assertAlmostEqual(t.lr, lr0 * t.ratio, delta=1e-12 * t.lr)
                self.assertLess(t.lr_ci95[0], t.lr)
                self.assertGreater(t.lr_ci95[1], t.lr)
                self.assertAlmostEqual(t.linear_rule_lr, lr0 * b / b0)
                self.assertAlmostEqual(t.sqrt_rule_lr, lr0 * math.sqrt(b / b0))
                self.assertAlmostEqual(t.fitted_lr_at_reference, at_b0.lr, delta=1e-12)
                self.assertEqual(t.reference_batch_size, b0)
                self.assertEqual(t.reference_lr, lr0)
                self.assertNotIn("reference_other_stage", t.flags)
        # Beyond the job's batch sizes: flagged.
        far = self.client.advise(JOB, 256, reference=(1e6, 1e-3))
        self.assertIn("reference_outside_data", far.transfer.flags)
        # No reference: no transfer.
        self.assertIsNone(self.client.advise(JOB, 256).transfer)

    def test_cli_http_and_python_agree(self):
        mine = advise(JOB, 1024, server=self.server.address, reference=(64, 2e-3),
                      criterion="fastest")
        out = cli(self.server, "advise", "--job", JOB, "--batch", "1024", "--from", "64:2e-3",
                  "--criterion", "fastest", "--json").stdout
        theirs = json.loads(out)
        url = (f"http://{self.server.http_address}/api/v1/jobs/{JOB}/advice?batch_size=1024"
               f"&criterion=fastest&ref_batch_size=64&ref_lr=2e-3")
        with urllib.request.urlopen(url, timeout=10) as r:
            web = json.loads(r.read())
        for other in (theirs, web):
            self.assertEqual(int(other["fitVersion"]), mine.fit_version)
            self.assertEqual(float(other["transfer"]["lr"]), mine.transfer.lr)
            self.assertEqual(float(other["transfer"]["lrCi95"]["lo"]), mine.transfer.lr_ci95[0])
            self.assertEqual(float(other["transfer"]["linearRuleLr"]), mine.transfer.linear_rule_lr)
            self.assertEqual(other["criterion"], "CRITERION_FASTEST")
        # The human-readable CLI output shows the transfer and both rules.
        text = cli(self.server, "advise", "--job", JOB, "--batch", "1024",
                   "--from", "64:2e-3").stdout
        self.assertIn("transfer from lr 0.002 at batch 64", text)
        self.assertIn("linear rule  0.032", text)
        self.assertIn("sqrt rule    0.008", text)

    def test_bad_references_name_the_field(self):
        cases = [((0, 1e-3), "reference.batch_size"), ((-64, 1e-3), "reference.batch_size"),
                 ((math.nan, 1e-3), "reference.batch_size"), ((64, 0), "reference.lr"),
                 ((64, -1e-3), "reference.lr"), ((64, math.inf), "reference.lr")]
        for ref, field in cases:
            with self.subTest(ref=ref):
                with self.assertRaises(SurgeError) as cm:
                    self.client.advise(JOB, 256, reference=ref)
                self.assertEqual(cm.exception.code, "INVALID_ARGUMENT")
                self.assertIn(field, str(cm.exception))
        with self.assertRaises(SurgeError) as cm:
            self.client.advise(JOB, 256, reference=(64, 1e-3), reference_step=-5)
        self.assertIn("reference.step", str(cm.exception))
        # CLI: a malformed --from is named; a bad value gets the server's message.
        p = cli(self.server, "advise", "--job", JOB, "--batch", "256", "--from", "64",
                check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--from: expected B0:LR0", p.stderr)
        p = cli(self.server, "advise", "--job", JOB, "--batch", "256", "--from", "64:-1",
                check=False)
        self.assertIn("INVALID_ARGUMENT: reference.lr", p.stderr)
        # HTTP: 400 naming the field.
        url = (f"http://{self.server.http_address}/api/v1/jobs/{JOB}/advice?batch_size=256"
               f"&ref_batch_size=0&ref_lr=1e-3")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(url, timeout=10)
        self.assertEqual(cm.exception.code, 400)
        self.assertIn("reference.batch_size", cm.exception.read().decode())
        for query, field in [("ref_lr=1e-3", "ref_batch_size"), ("ref_step=100", "ref_step")]:
            url = (f"http://{self.server.http_address}/api/v1/jobs/{JOB}/advice?batch_size=256"
                   f"&{query}")
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(url, timeout=10)
            self.assertEqual(cm.exception.code, 400)
            self.assertIn(field, cm.exception.read().decode())

    def test_scheduler_scales_lr_at_batch_switch(self):
        w1, w2 = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
        opt = torch.optim.AdamW([{"params": [w1], "lr": 2e-3}, {"params": [w2], "lr": 1e-3}])
        sched = AdviceScheduler(opt, JOB, 64, every=1000, client=self.client, use_step=False)
        try:
            applied = sched.set_batch_size(1024)
            self.assertIsNotNone(applied, sched.last_error)
            want = self.client.advise(JOB, 1024, reference=(64, 2e-3)).transfer.lr
            self.assertEqual(opt.param_groups[0]["lr"], want)
            self.assertEqual(opt.param_groups[1]["lr"], want * 0.5)
            self.assertEqual(sched.batch_size, 1024)
            # Switching back returns (up to rounding) to the LR we started from.
            sched.set_batch_size(64)
            self.assertAlmostEqual(opt.param_groups[0]["lr"], 2e-3, delta=2e-3 * 1e-9)
        finally:
            sched.close()
        # With the user's own reference, periodic advice applies the transfer.
        sched = AdviceScheduler(opt, JOB, 256, every=1, client=self.client, use_step=False,
                                reference=(64, 3e-3))
        try:
            sched.step(0)
            deadline = time.monotonic() + 30
            applied, step = None, 1
            while applied is None and time.monotonic() < deadline:
                applied = sched.step(step)
                step += 1
                time.sleep(0.01)
            self.assertIsNotNone(applied, sched.last_error)
            self.assertEqual(opt.param_groups[0]["lr"],
                             self.client.advise(JOB, 256, reference=(64, 3e-3)).transfer.lr)
        finally:
            sched.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
