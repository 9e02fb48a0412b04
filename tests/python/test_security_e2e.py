"""E2E for the Python client on a server with tokens and TLS (issue 11): a
token and the CA file from keyword arguments or from SURGE_TOKEN /
SURGE_TLS_CA (what the Reporter and AdviceScheduler use); no token is
UNAUTHENTICATED, a reader may not write, another tenant's job is NOT_FOUND,
and a plaintext channel gets nowhere. Certificates come from openssl at test
time, tokens from `surge token new`."""
import os
import subprocess
import tempfile
import unittest
from unittest import mock

from surge_client import Reporter, SurgeClient, SurgeError
from surge_testlib import CLI_BIN, Server


def new_token(tenant, role):
    out = subprocess.run([CLI_BIN, "token", "new", "--tenant", tenant, "--role", role],
                         check=True, capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines())
    return fields["token"].strip(), fields["line"].strip()


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class SecurityE2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="surge-sec-")
        d = cls.tmp.name
        cls.ca = os.path.join(d, "ca.pem")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", os.path.join(d, "ca.key"), "-out", cls.ca,
                "-days", "2", "-subj", "/CN=test CA")
        openssl("req", *ec, "-keyout", os.path.join(d, "server.key"),
                "-out", os.path.join(d, "server.csr"), "-subj", "/CN=localhost")
        with open(os.path.join(d, "san.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("x509", "-req", "-in", os.path.join(d, "server.csr"), "-CA", cls.ca,
                "-CAkey", os.path.join(d, "ca.key"), "-CAcreateserial",
                "-out", os.path.join(d, "server.pem"), "-days", "2",
                "-extfile", os.path.join(d, "san.ext"))
        cls.writer, writer_line = new_token("team-a", "writer")
        cls.reader, reader_line = new_token("team-a", "reader")
        cls.other, other_line = new_token("team-b", "admin")
        tokens = os.path.join(d, "tokens")
        with open(tokens, "w") as f:
            f.write("\n".join([writer_line, reader_line, other_line]) + "\n")
        cls.server = Server(extra_args=[
            f"--tokens_file={tokens}", f"--tls_cert={os.path.join(d, 'server.pem')}",
            f"--tls_key={os.path.join(d, 'server.key')}"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def client(self, token=None, **kw):
        return SurgeClient(self.server.address, token=token, tls_ca=self.ca, timeout=5,
                           retries=1, **kw)

    def test_tokens_roles_and_tenants(self):
        with self.client() as anonymous:
            with self.assertRaises(SurgeError) as e:
                anonymous.list_jobs()
            self.assertEqual(e.exception.code, "UNAUTHENTICATED")
        with self.client(self.writer) as writer:
            writer.create_job("py-sec")
            writer.create_run("py-sec", "r1", 32, base_lr=1e-3)
        with self.client(self.reader) as reader:
            self.assertEqual(reader.get_job("py-sec").tenant, "team-a")
            with self.assertRaises(SurgeError) as e:
                reader.create_run("py-sec", "r2", 64, base_lr=1e-3)
            self.assertEqual(e.exception.code, "PERMISSION_DENIED")
        with self.client(self.other) as other:
            with self.assertRaises(SurgeError) as e:
                other.get_job("py-sec")
            self.assertEqual(e.exception.code, "NOT_FOUND")
            self.assertEqual(e.exception.details, "job 'py-sec' not found")
            self.assertNotIn("py-sec", [j.name for j in other.list_jobs()])

    def test_reporter_takes_token_and_ca_from_the_environment(self):
        env = {"SURGE_TOKEN": self.writer, "SURGE_TLS_CA": self.ca}
        with mock.patch.dict(os.environ, env):
            with Reporter("py-env", "r1", 32, server=self.server.address, base_lr=1e-3) as rep:
                for step in range(200):
                    rep.log(step, loss=2.0 - 0.001 * step, lr=1e-3)
                rep.flush(timeout=30)
        with self.client(self.reader) as reader:
            self.assertEqual(reader.get_job("py-env").record_count, 200)

    def test_plaintext_channel_gets_nowhere(self):
        plain = SurgeClient(self.server.address, token=self.reader, timeout=2, retries=1)
        with plain:
            with self.assertRaises(SurgeError) as e:
                plain.list_jobs()
            # The client waits for a ready channel, which never comes.
            self.assertIn(e.exception.code, ("UNAVAILABLE", "DEADLINE_EXCEEDED"))


if __name__ == "__main__":
    unittest.main()
