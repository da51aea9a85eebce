#!/usr/bin/env python3
"""Tests of deploy/rotate_log.py (run by `deploy/chaos.sh --short`, so by `make test`):
the cap, the number of files kept, whole lines, over-long lines, and exiting at the end of input
but not on SIGINT or SIGTERM."""

import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ROTATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rotate_log.py")


def run(path, data, max_bytes, keep):
    subprocess.run([sys.executable, ROTATOR, path, "--max-bytes", str(max_bytes), "--keep", str(keep)],
                   input=data, check=True, timeout=30)


class RotateLogTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "svc.log")

    def tearDown(self):
        self.dir.cleanup()

    def files(self):
        return sorted(os.listdir(self.dir.name))

    def test_output_is_capped_and_rotated_keeping_whole_lines(self):
        lines = [f"line {i:06d} {'x' * 80}\n".encode() for i in range(20_000)]  # about 1.9 MB
        run(self.path, b"".join(lines), 100_000, 2)
        self.assertEqual(self.files(), ["svc.log", "svc.log.1", "svc.log.2"])
        total = 0
        for name in self.files():
            size = os.path.getsize(os.path.join(self.dir.name, name))
            self.assertLessEqual(size, 100_000, name)
            total += size
            with open(os.path.join(self.dir.name, name), "rb") as f:
                for line in f:
                    self.assertTrue(line.startswith(b"line ") and line.endswith(b"x\n"), line[:40])
        self.assertLessEqual(total, 300_000)
        with open(self.path, "rb") as f:
            self.assertTrue(f.read().endswith(lines[-1]), "the newest lines are in FILE")
        with open(self.path + ".1", "rb") as f1, open(self.path, "rb") as f0:
            first_of_current = f0.readline()
            self.assertLess(f1.readlines()[-1], first_of_current, "FILE.1 holds the lines just before FILE's")

    def test_a_line_longer_than_the_cap_is_cut(self):
        run(self.path, b"y" * 250 + b"\n", 100, 5)
        sizes = [os.path.getsize(os.path.join(self.dir.name, n)) for n in self.files()]
        self.assertEqual(sum(sizes), 251)
        self.assertTrue(all(s <= 100 for s in sizes), sizes)

    def test_it_appends_to_an_existing_log_and_keep_zero_keeps_only_the_file(self):
        with open(self.path, "wb") as f:
            f.write(b"before\n")
        run(self.path, b"after\n", 1_000, 0)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"before\nafter\n")
        run(self.path, b"z" * 999 + b"\n", 1_000, 0)
        self.assertEqual(self.files(), ["svc.log"])

    def test_it_ignores_sigint_and_sigterm_and_exits_at_the_end_of_input(self):
        proc = subprocess.Popen([sys.executable, ROTATOR, self.path], stdin=subprocess.PIPE)
        proc.stdin.write(b"first\n")
        proc.stdin.flush()
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertIsNone(proc.poll(), "still reading after SIGINT and SIGTERM")
        proc.stdin.write(b"last words of a draining service\n")
        proc.stdin.close()
        self.assertEqual(proc.wait(timeout=10), 0)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"first\nlast words of a draining service\n")


if __name__ == "__main__":
    unittest.main(verbosity=1)
