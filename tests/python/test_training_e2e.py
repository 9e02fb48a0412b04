"""E2E: a PyTorch CPU training loop on real Fashion-MNIST reports every step
through Reporter to a real surge-server (loopback, SQLite file). Mid-run the
server is frozen (SIGSTOP, so batches are written but not acked), killed with
SIGKILL and restarted on the same port and file. Checks: every record acked
before the kill is in the file; the loop never blocked; the client re-sent the
unacked batches; in the end `surge records` returns exactly what was logged."""
import signal
import threading
import time
import unittest

import pytorch_fashion_mnist as example
from surge_client import Reporter
from surge_testlib import Server, cli_records, expected_csv_row, parse_csv_row

LOG_BOUND_S = 0.1    # one log() call may never take longer than this
STEP_BOUND_S = 1.0   # nor a whole training step (train + log), server dead or alive
BATCH, ACCUM = 64, 2


class TrainingE2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().start()
        cls.train = example.load_fashion_mnist("train", limit=8000)
        cls.test = example.load_fashion_mnist("test", limit=500)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_real_data_is_loaded(self):
        x, y = self.train
        self.assertEqual(tuple(x.shape), (8000, 1, 28, 28))
        self.assertEqual(sorted(set(y.tolist())), list(range(10)))
        self.assertGreater(float(x.std()), 0.2)  # real images, not zeros

    def test_training_survives_kill_and_restart(self):
        job, run = "fmnist-e2e", f"mlp-bs{BATCH}"
        srv = self.server
        steps = example.training_steps(100000, BATCH, ACCUM, lr=1e-3, model="mlp",
                                       train=self.train, test=self.test, eval_every=25)
        net, opt = next(steps)
        rep = Reporter(job, run, BATCH, server=srv.address, optimizer=opt, base_lr=1e-3,
                       linger=0.02, labels={"test": "e2e"})
        logged, log_times, step_times = [], [], []
        phase = "before"   # before -> stopped -> dead -> restarted
        acked_at_kill = sent_at_stop = None
        restarted = threading.Event()
        restart_errors = []
        after_restart = 0

        def restart_later():
            try:
                time.sleep(0.5)  # training goes on against a dead server meanwhile
                srv.start()
                restarted.set()
            except Exception as e:  # noqa: BLE001
                restart_errors.append(e)
                restarted.set()

        t_prev = time.perf_counter()
        for rec in steps:
            t0 = time.perf_counter()
            rep.log(**rec)
            t1 = time.perf_counter()
            log_times.append(t1 - t0)
            step_times.append(t1 - t_prev)
            logged.append(rec)
            step = rec["step"]
            # Test control (excluded from the timings).
            if phase == "before" and step == 150:
                rep.flush(30)
                srv.signal(signal.SIGSTOP)
                sent_at_stop = rep.stats().batches_sent
                phase = "stopped"
            elif phase == "stopped":
                s = rep.stats()
                if s.batches_sent >= sent_at_stop + 3 or step > 3000:
                    # Batches are written to the frozen server, not acked: kill it.
                    acked_at_kill = s.acked
                    srv.kill9()
                    stored = srv.db_records(job, run)
                    for r in logged[:acked_at_kill]:
                        self.assertIn(r["step"], stored, "an acked record is not in the file")
                        self.assertEqual(stored[r["step"]][3], r["loss"])
                    threading.Thread(target=restart_later, daemon=True).start()
                    phase = "dead"
            elif phase == "dead" and restarted.is_set():
                phase = "restarted"
            elif phase == "restarted":
                after_restart += 1
                if after_restart >= 200 and step >= 600:
                    break
            t_prev = time.perf_counter()
        self.assertFalse(restart_errors, restart_errors)
        rep.close(timeout=60)

        s = rep.stats()
        print(f"\nsteps {len(logged)}, log() max {max(log_times) * 1e3:.3f} ms, "
              f"median {sorted(log_times)[len(log_times) // 2] * 1e6:.1f} us; step max "
              f"{max(step_times) * 1e3:.1f} ms; acked at kill {acked_at_kill}; {s}")
        self.assertLess(max(log_times), LOG_BOUND_S)
        self.assertLess(max(step_times), STEP_BOUND_S)
        self.assertEqual(s.logged, len(logged))
        self.assertEqual(s.acked, len(logged))
        self.assertEqual(s.dropped, 0)
        self.assertEqual(s.buffered, 0)
        self.assertGreaterEqual(s.reconnects, 1)
        self.assertGreaterEqual(s.batches_resent, 1, "unacked batches were not re-sent")
        self.assertEqual(s.stored + s.duplicate, s.acked)
        self.assertGreater(acked_at_kill, 0)

        # Everything logged is stored exactly once, value for value (CLI CSV).
        rows = [parse_csv_row(r) for r in cli_records(srv, job, run)]
        self.assertEqual(len(rows), len(logged))
        for got, want in zip(rows, logged):
            self.assertEqual(got, expected_csv_row(run, BATCH, want))
        self.assertTrue(any(r["eval_loss"] is not None for r in rows))
        self.assertTrue(all(r["b_small"] == BATCH // ACCUM and r["b_big"] == BATCH
                            for r in rows))
        # The model learned something (the loop is a real training loop).
        first = sum(r["loss"] for r in rows[:20]) / 20
        last = sum(r["loss"] for r in rows[-20:]) / 20
        self.assertLess(last, first * 0.7)


if __name__ == "__main__":
    unittest.main(verbosity=2)
