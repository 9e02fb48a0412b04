"""E2E for surge_client.optuna against a real surge-server and a real Optuna study
(Debian's python3-optuna, SQLite storage in a temp dir): a 3 batch sizes x 3 LRs grid
whose objective simulates training (deterministic loss curves, trial.report() every
step, a ThresholdPruner prunes the two slowest at step 40) is streamed by the callback, then
exported again in process and with `python3 -m surge_client.optuna` (idempotent), and the
error paths give the documented exit codes and messages."""
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import unittest

import optuna
from optuna.trial import TrialState

from surge_client import SurgeClient, SurgeError
from surge_client._proto import pb
from surge_client.optuna import SurgeOptunaCallback, TrialParamError, export_study
from surge_testlib import Server

BATCH_SIZES = [16, 64, 256]
LRS = [1e-3, 3e-3, 1e-2]
SEED = 7
STEPS = 50  # intermediate values at steps 1..STEPS
GRID = "grid"  # the study, and the job the callback streams it to


def lr_opt(batch_size):
    """The fastest LR grows with B (2.1e-3, 3e-3, 4.2e-3): inside the LR grid everywhere."""
    return 3e-3 * (batch_size / 64) ** 0.25


def synthetic_loss(batch_size, lr, step):
    """A loss curve from 2.3 down to 0.3: its speed per step saturates in B (B_noise 32)
    and peaks at lr = lr_opt(B) (2x / (1 + x^2) of x = lr / lr_opt). The slowest runs
    (B = 16 at 1e-3 and 1e-2) are still above 0.35 at step 40, where the pruner stops them;
    every run crosses the loss levels between (the plain-run fit's targets)."""
    x = lr / lr_opt(batch_size)
    speed = batch_size / (1 + batch_size / 32) * 2 * x / (1 + x * x)
    return 0.3 + 2.0 * math.exp(-0.011 * speed * step)


def objective(trial):
    b = trial.suggest_categorical("batch_size", BATCH_SIZES)
    lr = trial.suggest_categorical("lr", LRS)
    trial.suggest_categorical("seed", [SEED])
    value = None
    for step in range(1, STEPS + 1):
        value = synthetic_loss(b, lr, step)
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def odd_objective(trial):
    """Trial 0 fails, trial 1 completes without intermediate values, trial 2 reports a
    NaN among finite values, trial 3 lacks the lr param."""
    b = trial.suggest_categorical("batch_size", [32])
    if trial.number == 0:
        raise ValueError("simulated crash")
    if trial.number == 1:
        return 1.0
    if trial.number == 2:
        trial.suggest_float("lr", 1e-3, 1e-3)
        for step in range(5):
            trial.report(math.nan if step == 2 else 1.0 / (step + 1), step)
        return 0.2
    trial.report(1.0, 0)
    return float(b)


class OptunaE2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # no tracebacks of expected FAILs
        cls.server = Server().start()
        cls.client = SurgeClient(cls.server.address)
        # The Optuna storage is a SQLite file in a temp dir, on tmpfs where there is one:
        # Optuna commits every trial.report() (~20 ms with fsync on this VM's disk, 9 s for
        # the grid; 0.7 s on tmpfs).
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        cls.tmp = tempfile.TemporaryDirectory(prefix="surge-optuna-", dir=shm)
        cls.storage = f"sqlite:///{os.path.join(cls.tmp.name, 'study.db')}"
        cls.study = optuna.create_study(
            study_name=GRID, storage=cls.storage, direction="minimize",
            sampler=optuna.samplers.GridSampler(
                {"batch_size": BATCH_SIZES, "lr": LRS, "seed": [SEED]}, seed=0),
            pruner=optuna.pruners.ThresholdPruner(upper=0.35, n_warmup_steps=40))
        cls.cb = SurgeOptunaCallback(GRID, batch_param="batch_size", lr_param="lr",
                                     server=cls.server.address, seed_param="seed")
        t0 = time.monotonic()
        cls.study.optimize(objective, n_trials=len(BATCH_SIZES) * len(LRS),
                           callbacks=[cls.cb])
        cls.optimize_s = time.monotonic() - t0
        cls.trials = cls.study.get_trials()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        cls.tmp.cleanup()

    def export_cli(self, *args, storage=None):
        env = dict(os.environ, SURGE_SERVER=self.server.address)
        return subprocess.run(
            [sys.executable, "-m", "surge_client.optuna", "--storage", storage or self.storage,
             *args], capture_output=True, text=True, timeout=120, env=env)

    def total_records(self):
        return sum(len(t.intermediate_values) for t in self.trials)

    def assert_job_has_study(self, job, intermediate="eval_loss"):
        """Every trial of the grid study is a run of `job` with its records."""
        runs = {r.name: r for r in self.client.list_runs(job)}
        self.assertEqual(sorted(runs), sorted(f"trial-{t.number}" for t in self.trials))
        records = {}
        for r in self.client.list_records(job):
            records.setdefault(r.run, []).append(r)
        for t in self.trials:
            name = f"trial-{t.number}"
            with self.subTest(job=job, run=name):
                run = runs[name]
                b, lr = t.params["batch_size"], t.params["lr"]
                self.assertEqual(run.batch_size, b)
                self.assertEqual(run.base_lr, lr)
                self.assertEqual(run.protocol, pb.PROTOCOL_PLAIN)
                self.assertEqual(dict(run.labels), {
                    "optuna_study": GRID, "optuna_trial": str(t.number),
                    "optuna_state": t.state.name, "seed": str(SEED)})
                recs = records[name]
                self.assertEqual(run.record_count, len(t.intermediate_values))
                self.assertEqual([r.step for r in recs], sorted(t.intermediate_values))
                for r in recs:
                    v = t.intermediate_values[r.step]
                    self.assertEqual(r.examples, r.step * b)
                    self.assertEqual(r.lr, lr)
                    self.assertEqual(r.loss, v)
                    self.assertEqual(v, synthetic_loss(b, lr, r.step))
                    if intermediate == "eval_loss":
                        self.assertTrue(r.HasField("eval_loss"))
                        self.assertEqual(r.eval_loss, v)
                    else:
                        self.assertFalse(r.HasField("eval_loss"))

    # -- the callback ----------------------------------------------------------
    def test_callback_streams_every_trial(self):
        states = [t.state for t in self.trials]
        self.assertEqual(len(self.trials), 9)
        self.assertEqual(sorted({(t.params["batch_size"], t.params["lr"]) for t in self.trials}),
                         sorted((b, lr) for b in BATCH_SIZES for lr in LRS))
        pruned = {(t.params["batch_size"], t.params["lr"]) for t in self.trials
                  if t.state == TrialState.PRUNED}
        self.assertEqual(pruned, {(16, 1e-3), (16, 1e-2)})
        self.assertEqual(states.count(TrialState.COMPLETE), 7)
        st = self.cb.stats
        self.assertEqual(st.trials_streamed, 9)
        self.assertEqual((st.trials_skipped_state, st.trials_skipped_empty, st.trials_failed,
                          st.values_skipped), (0, 0, 0, 0))
        self.assertEqual(st.records_stored, self.total_records())
        self.assertEqual(st.records_duplicate, 0)
        self.assertEqual(self.total_records(), 7 * STEPS + 2 * 40)  # pruned at step 40
        self.assert_job_has_study(GRID)
        # A study that only trained and reported is fitted from its trials
        # (plain runs): advice answers and says what it stands on.
        deadline = time.time() + 30
        while True:
            fit = self.client.get_fit(GRID)
            if fit.error == "" and fit.runs.runs_used == 9 or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(fit.error, "", fit.notes)
        self.assertEqual(fit.runs.runs_used, 9)
        self.assertTrue(fit.stages or fit.fastest_stages)
        a = self.client.advise(GRID, 64, criterion="fastest" if not fit.stages else "improvement")
        self.assertEqual(a.evidence, "plain_runs")
        self.assertGreater(a.lr, 0)

    def test_reexport_stores_nothing_new(self):
        st = export_study(optuna.load_study(study_name=GRID, storage=self.storage), GRID,
                          server=self.server.address, seed_param="seed", workers=1)
        self.assertEqual(st.trials_streamed, 9)
        self.assertEqual(st.records_stored, 0)
        self.assertEqual(st.records_duplicate, self.total_records())
        self.assertEqual(sum(r.record_count for r in self.client.list_runs(GRID)),
                         self.total_records())

    def test_callback_skips_and_counts(self):
        study = optuna.create_study(study_name="odd", storage=self.storage)
        cb = SurgeOptunaCallback("odd", server=self.server.address, raise_errors=False)
        with self.assertLogs("surge_client", "WARNING") as logs:
            study.optimize(odd_objective, n_trials=4, callbacks=[cb], catch=(ValueError,))
        self.assertEqual([t.state for t in study.get_trials()],
                         [TrialState.FAIL] + [TrialState.COMPLETE] * 3)
        st = cb.stats
        self.assertEqual((st.trials_streamed, st.trials_skipped_state, st.trials_skipped_empty,
                          st.trials_failed, st.values_skipped, st.records_stored),
                         (1, 1, 1, 1, 1, 4))
        self.assertIsInstance(cb.last_error, TrialParamError)
        self.assertIn("trial 3: no param 'lr'", str(cb.last_error))
        self.assertTrue(any("trial 1" in m and "no intermediate values" in m
                            for m in logs.output), logs.output)
        self.assertEqual([(r.name, r.batch_size) for r in self.client.list_runs("odd")],
                         [("trial-2", 32)])
        self.assertEqual([r.step for r in self.client.list_records("odd")], [0, 1, 3, 4])

    def test_callback_missing_param_raises(self):
        study = optuna.create_study(study_name="missing-param", storage=self.storage)
        cb = SurgeOptunaCallback("missing", batch_param="bs", server=self.server.address)
        with self.assertRaises(TrialParamError) as cm:
            study.optimize(objective, n_trials=3, callbacks=[cb])
        self.assertIn("trial 0: no param 'bs' (batch size)", str(cm.exception))
        self.assertIn("batch_size, lr, seed", str(cm.exception))
        self.assertEqual(len(study.get_trials()), 1)  # the exception ended optimize()
        with self.assertRaises(SurgeError) as nf:
            self.client.get_job("missing")
        self.assertEqual(nf.exception.code, "NOT_FOUND")

    # -- the CLI ---------------------------------------------------------------
    def test_cli_export(self):
        args = ["--study", GRID, "--job", "grid-cli", "--batch-param", "batch_size",
                "--lr-param", "lr", "--seed-param", "seed", "--server", self.server.address]
        p = self.export_cli(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(),
                         f"study 'grid' -> job 'grid-cli': streamed 9 trials, "
                         f"{self.total_records()} records ({self.total_records()} new, "
                         f"0 already stored); skipped 0 trials without intermediate values, "
                         f"0 not COMPLETE/PRUNED, 0 non-finite values")
        self.assert_job_has_study("grid-cli")
        p = self.export_cli(*args, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual((out["trials_streamed"], out["records_stored"],
                          out["records_duplicate"]), (9, 0, self.total_records()))
        # Training losses only (the server from $SURGE_SERVER).
        p = self.export_cli("--study", GRID, "--job", "grid-loss", "--intermediate", "loss",
                            "--seed-param", "seed")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_job_has_study("grid-loss", intermediate="loss")

    def test_cli_bad_arguments_exit_2(self):
        optuna.create_study(study_name="other", storage=self.storage)
        p = self.export_cli("--study", "nope", "--job", "x")
        self.assertEqual(p.returncode, 2)
        self.assertIn(f"error: no study 'nope' in {self.storage}; its studies: ", p.stderr)
        self.assertIn("'grid'", p.stderr)
        self.assertIn("'other'", p.stderr)
        p = self.export_cli("--job", "x")  # --study omitted, several studies
        self.assertEqual(p.returncode, 2)
        self.assertIn("--study is required", p.stderr)
        missing_db = os.path.join(self.tmp.name, "missing.db")
        p = self.export_cli("--study", GRID, "--job", "x", storage=f"sqlite:///{missing_db}")
        self.assertEqual(p.returncode, 2)
        self.assertIn("no such file", p.stderr)
        self.assertFalse(os.path.exists(missing_db))
        p = self.export_cli("--study", GRID, "--job", "x", "--lr-param", "learning_rate")
        self.assertEqual(p.returncode, 2)
        self.assertRegex(p.stderr, r"error: trial \d+: no param 'learning_rate' "
                                   r"\(learning rate\); the trial's params: batch_size, lr, seed")
        p = self.export_cli("--study", GRID, "--job", "x", "--intermediate", "accuracy")
        self.assertEqual(p.returncode, 2)
        self.assertIn("invalid choice: 'accuracy'", p.stderr)
        p = self.export_cli("--study", GRID)  # --job is required
        self.assertEqual(p.returncode, 2)
        with self.assertRaises(SurgeError) as nf:  # nothing was streamed
            self.client.get_job("x")
        self.assertEqual(nf.exception.code, "NOT_FOUND")

    def test_cli_surge_errors_exit_1(self):
        # Another study's trials into the same job and run names: refused.
        p = self.export_cli("--study", "odd-cli", "--job", GRID, storage=self.odd_storage())
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stderr.splitlines()[0],
                         r"^ALREADY_EXISTS: job 'grid' run 'trial-0' already holds study 'grid'")
        # The job exists with another unit.
        self.client.create_job("tokens-job", unit="tokens")
        p = self.export_cli("--study", GRID, "--job", "tokens-job")
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith("ALREADY_EXISTS: job 'tokens-job' exists with unit "
                                            "tokens"), p.stderr)
        # No server.
        p = self.export_cli("--study", GRID, "--job", "x", "--server", "127.0.0.1:1",
                            "--timeout", "1")
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"^(DEADLINE_EXCEEDED|UNAVAILABLE): ")
        self.assertIn("is surge-server running at 127.0.0.1:1?", p.stderr)

    def odd_storage(self):
        """A separate storage with one study whose trial 0 has the grid's trial-0 batch
        size but another LR."""
        storage = f"sqlite:///{os.path.join(self.tmp.name, 'odd.db')}"
        s = optuna.create_study(study_name="odd-cli", storage=storage)
        first = self.trials[0].params
        s.enqueue_trial({"batch_size": first["batch_size"], "lr": 0.5})

        def f(trial):
            trial.suggest_categorical("batch_size", BATCH_SIZES)
            trial.suggest_float("lr", 0.1, 1.0)
            trial.report(1.0, 1)
            return 1.0
        s.optimize(f, n_trials=1)
        return storage


if __name__ == "__main__":
    unittest.main(verbosity=2)
