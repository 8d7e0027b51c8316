"""The fenced-store judge (check.py) must fail on the deliberately broken
history Porcupine's tests use too (porcupine/testdata/overlap.log: two
overlapping grants of one mutex, both releases confirmed) and pass the legal
one. Run by tests/mixed/run.sh: python3 -m unittest tests/mixed/test_check.py
"""

import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def judge(fixture, *extra):
    return subprocess.run(
        [sys.executable, os.path.join(HERE, "check.py"), "judge",
         os.path.join(HERE, "porcupine", "testdata", fixture),
         "--limits", "m=1,s=2", "--backend", "fixture", *extra],
        capture_output=True, text=True, timeout=60,
    )


class FencedJudge(unittest.TestCase):
    def test_two_overlapping_confirmed_grants_are_flagged(self):
        result = judge("overlap.log")
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("granted within rust-1-1's confirmed hold", result.stdout)

    def test_the_legal_history_passes_with_its_counts(self):
        result = judge("legal.log", "--langs", "rust,python,c,go,node,ruby")
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn("stale writes rejected 1, losses reported 1", result.stdout)
        self.assertIn("violations 0", result.stdout)

    def test_a_run_problem_is_a_violation(self):
        result = judge("legal.log", "--problem", "c exited 1")
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("mixed: violation: c exited 1", result.stdout)


if __name__ == "__main__":
    unittest.main()
