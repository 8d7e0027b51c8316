"""Tests of bench/report.py on synthetic results with the metric names of
core/benches/scenarios.rs and the peers (bench/peers/).

    python bench/test_report.py            # the chart test needs matplotlib
    python bench/test_report.py --write FILE.jsonl   # just write the sample
"""

import importlib.util
import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _figures(backend, subject, **metrics):
    return [
        {"backend": backend, "subject": subject, "metric": m, "value": v}
        for m, v in metrics.items()
    ]


def _leases(backend, n, **metrics):
    return _figures(backend, "polylock", **{f"{n}_leases_{k}": v for k, v in metrics.items()})


def sample():
    """Plausible figures for every backend bench/run.sh measures, plus ldlm."""
    rows = []
    # memory:// — no floor, no peer, no counting proxy (no requests/min).
    rows += _figures("memory", "polylock", uncontended_p50_us=3.1, uncontended_p99_us=11.8,
                     handoff_p50_us=24.0, handoff_p99_us=81.0)
    rows += _figures("memory", "polylock", throughput_16_contenders_per_s=251_000.0,
                     errors_16_contenders=0.0, throughput_64_contenders_per_s=232_500.0,
                     errors_64_contenders=0.0, throughput_1000_names_per_s=402_000.0)
    # Consul: polylock, the floor (two KV PUTs), api.Lock and api.Semaphore.
    rows += _figures("consul", "polylock", uncontended_p50_us=1510.0, uncontended_p99_us=4020.0)
    rows += _figures("consul", "floor", uncontended_p50_us=1360.0, uncontended_p99_us=3480.0)
    rows += _figures("consul", "polylock", handoff_p50_us=1830.0, handoff_p99_us=5100.0)
    rows += _figures("consul", "polylock", throughput_16_contenders_per_s=421.0,
                     errors_16_contenders=0.0, throughput_64_contenders_per_s=398.0,
                     errors_64_contenders=0.0, throughput_1000_names_per_s=9120.0)
    rows += _figures("consul", "api.Lock", uncontended_p50_us=2514.0, uncontended_p99_us=6100.0)
    rows += _figures("consul", "api.Semaphore", uncontended_p50_us=6020.0, uncontended_p99_us=12400.0)
    rows += _figures("consul", "api.Lock", handoff_p50_us=12100.0, handoff_p99_us=30500.0)
    rows += _figures("consul", "api.Semaphore", handoff_p50_us=15300.0, handoff_p99_us=41000.0)
    rows += _figures("consul", "api.Lock", throughput_16_contenders_per_s=183.0,
                     throughput_64_contenders_per_s=91.0, throughput_1000_names_per_s=4010.0)
    # MongoDB (FerretDB): backend "mongodb", the floor (insert + update), mongodb-lock.
    rows += _figures("mongodb", "polylock", uncontended_p50_us=905.0, uncontended_p99_us=2480.0)
    rows += _figures("mongodb", "floor", uncontended_p50_us=702.0, uncontended_p99_us=1990.0)
    rows += _figures("mongodb", "polylock", handoff_p50_us=2540.0, handoff_p99_us=8020.0)
    rows += _figures("mongodb", "polylock", throughput_16_contenders_per_s=352.0,
                     errors_16_contenders=0.0, throughput_64_contenders_per_s=331.0,
                     errors_64_contenders=2.0, throughput_1000_names_per_s=3050.0)
    rows += _figures("mongodb", "mongodb-lock", uncontended_p50_us=1120.0, uncontended_p99_us=3010.0,
                     handoff_p50_us=151_000.0, handoff_p99_us=196_500.0,
                     throughput_16_contenders_per_s=9.5, throughput_64_contenders_per_s=9.8)
    # LDLM: the floor is two raw RPCs; the peer py-ldlm.
    # acquire is its own call there (Lock), so try_acquire has rows of its own,
    # and the floor reports one RPC's round trip.
    rows += _figures("ldlm", "polylock", uncontended_p50_us=310.0, uncontended_p99_us=905.0,
                     uncontended_try_p50_us=290.0, uncontended_try_p99_us=850.0)
    rows += _figures("ldlm", "floor", uncontended_p50_us=252.0, uncontended_p99_us=700.0,
                     uncontended_try_p50_us=240.0, uncontended_try_p99_us=690.0,
                     rpc_round_trip_p50_us=118.0, rpc_round_trip_p99_us=350.0,
                     handoff_p50_us=350.0, handoff_p99_us=1010.0)
    rows += _figures("ldlm", "polylock", handoff_p50_us=402.0, handoff_p99_us=1210.0)
    rows += _figures("ldlm", "polylock", throughput_16_contenders_per_s=2510.0,
                     errors_16_contenders=0.0, throughput_64_contenders_per_s=2390.0,
                     errors_64_contenders=0.0, throughput_1000_names_per_s=20_100.0)
    rows += _figures("ldlm", "py-ldlm", uncontended_p50_us=455.0, uncontended_p99_us=1500.0,
                     uncontended_try_p50_us=430.0, uncontended_try_p99_us=1400.0,
                     handoff_p50_us=610.0, handoff_p99_us=2050.0,
                     throughput_16_contenders_per_s=1480.0, throughput_64_contenders_per_s=1320.0)
    # The leases scenario runs last, in processes of its own.
    rows += _leases("memory", 10000, acquire_s=0.052, acquire_first_1000_p50_us=21.0,
                    acquire_last_1000_p50_us=22.5, rss_bytes_per_lease=912.0, lost=0.0)
    rows += _leases("consul", 10000, acquire_s=6.21, acquire_first_1000_p50_us=4810.0,
                    acquire_last_1000_p50_us=5020.0, rss_bytes_per_lease=2150.0,
                    requests_per_min=40.0, lost=0.0)
    rows += _leases("mongodb", 1000, acquire_s=1.48, rss_bytes_per_lease=3020.0,
                    requests_per_min=182.0, lost=0.0)
    rows += _leases("ldlm", 10000, acquire_s=2.9, rss_bytes_per_lease=1400.0,
                    requests_per_min=120_050.0, server_renews_per_min=120_010.0, lost=0.0)
    return rows


def write(rows, path):
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))


class Numbers(unittest.TestCase):
    def test_units(self):
        self.assertEqual(report.human(3.14159, "latency"), "3.14 µs")
        self.assertEqual(report.human(1510.0, "latency"), "1.51 ms")
        self.assertEqual(report.human(151_000.0, "latency"), "151 ms")
        self.assertEqual(report.human(2_500_000.0, "latency"), "2.50 s")
        self.assertEqual(report.human(6.21, "seconds"), "6.21 s")
        self.assertEqual(report.human(251_000.0, "rate"), "251,000 acq/s")
        self.assertEqual(report.human(9.5, "rate"), "9.50 acq/s")
        self.assertEqual(report.human(2150.0, "bytes"), "2.10 KiB")
        self.assertEqual(report.human(None, "latency"), "—")

    def test_verdicts(self):
        latency = report.describe("uncontended_p50_us")
        rate = report.describe("throughput_64_contenders_per_s")
        self.assertEqual(report.verdict(1510.0, 2514.0, latency), "0.60× (faster)")
        self.assertEqual(report.verdict(2514.0, 1510.0, latency), "1.66× (slower)")
        self.assertEqual(report.verdict(398.0, 91.0, rate), "4.37× (faster)")
        self.assertEqual(report.verdict(91.0, 398.0, rate), "0.23× (slower)")
        self.assertEqual(report.verdict(100.0, 101.0, rate), "0.99× (on par)")
        self.assertEqual(report.verdict(None, 1.0, rate), "—")
        self.assertEqual(report.verdict(1.0, 0.0, rate), "—")
        self.assertEqual(report.versus_floor(1510.0, 1360.0), "1.11× floor")

    def test_metric_names(self):
        self.assertEqual(report.describe("throughput_16_contenders_per_s").contenders, 16)
        self.assertIsNone(report.describe("throughput_1000_names_per_s").contenders)
        self.assertEqual(report.describe("1000_leases_requests_per_min").kind, "requests")
        self.assertEqual(report.describe("10000_leases_rss_bytes_per_lease").kind, "bytes")
        self.assertEqual(report.describe("10000_leases_acquire_s").kind, "seconds")
        self.assertEqual(report.describe("10000_leases_server_renews_per_min").kind, "requests")
        first = report.describe("10000_leases_acquire_first_1000_p50_us")
        self.assertEqual((first.label, first.kind, first.higher_is_better),
                         ("10,000 leases: acquisition p50, first 1,000", "latency", False))
        last = report.describe("10000_leases_acquire_last_1000_p50_us")
        self.assertEqual(last.label, "10,000 leases: acquisition p50, last 1,000")
        # With the leases' rows, after the time to take them all.
        order = [report.describe(f"10000_leases_{m}").order
                 for m in ("acquire_s", "acquire_first_1000_p50_us", "acquire_last_1000_p50_us",
                           "requests_per_min", "rss_bytes_per_lease", "lost")]
        self.assertEqual(order, sorted(order))
        self.assertGreater(first.order, report.describe("throughput_64_contenders_per_s").order)
        self.assertEqual(report.describe("uncontended_try_p50_us").label,
                         "uncontended try_acquire+release p50")
        self.assertEqual(report.describe("throughput_16_clients_per_s").label,
                         "throughput, 16 clients (one each) on one name")
        self.assertIsNone(report.describe("throughput_16_clients_per_s").contenders)
        self.assertEqual(report.describe("throughput_64_contenders_2_slots_per_s").label,
                         "throughput, 64 contenders on a 2-slot semaphore")
        writes = report.describe("raft_writes_per_acquisition_64_contenders")
        self.assertEqual((writes.kind, writes.higher_is_better), ("requests", False))
        self.assertEqual(report.describe("errors_16_clients").label, "errors, 16 clients")
        self.assertEqual(report.describe("something_new_us").kind, "latency")
        self.assertIsNone(report.describe("mystery").higher_is_better)


class Report(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.results = Path(self.dir.name) / "results.jsonl"
        write(sample(), self.results)

    def tearDown(self):
        self.dir.cleanup()

    def test_markdown(self):
        md = report.markdown(report.Results.load(self.results))
        for backend in ("memory", "consul", "mongodb", "ldlm"):
            self.assertIn(f"## {backend}", md)
            self.assertIn(f"- **{backend}**", md)
        self.assertIn("1.11× floor (1.36 ms)", md)
        self.assertIn("0.60× (faster) vs api.Lock", md)
        self.assertIn("throughput with 64 contenders 398 acq/s — 4.37× (faster) vs api.Lock", md)
        # Missing figures: api.Semaphore has no throughput, memory:// no requests/min.
        semaphore = [l for l in md.splitlines() if l.startswith("| throughput, 64")][1]
        self.assertTrue(semaphore.rstrip(" |").endswith("— | —"), semaphore)
        self.assertIn("| handoff (release → waiter holds) p50 | lower | 1.83 ms | — | — | 12.1 ms |", md)
        self.assertIn("| 10,000 leases: acquisition p50, first 1,000 | lower | 21.0 µs |", md)
        self.assertIn("| 10,000 leases: acquisition p50, last 1,000 | lower | 22.5 µs |", md)
        # Rows in reading order: latencies, throughput by contenders, leases.
        consul = md.split("## consul")[1].split("## mongodb")[0]
        order = [consul.index(s) for s in ("uncontended acquire+release p50", "handoff", "16 contenders",
                                           "64 contenders", "1,000 names", "errors, 16", "leases")]
        self.assertEqual(order, sorted(order))

    def test_ldlm(self):
        md = report.markdown(report.Results.load(self.results))
        ldlm = md.split("\n## ldlm")[1]
        self.assertIn("Peers: py-ldlm.", ldlm)
        self.assertIn("uncontended p50 310 µs — 1.23× floor (252 µs); 0.68× (faster) vs py-ldlm (455 µs)", md)
        self.assertIn("| uncontended try_acquire+release p50 | lower | 290 µs | 240 µs | 1.21× floor | 430 µs |", ldlm)
        self.assertIn("| one RPC round trip (floor's release call alone) p50 | lower | — | 118 µs | — |", ldlm)
        self.assertIn("handoff p50 402 µs — 1.15× floor (350 µs); 0.66× (faster) vs py-ldlm (610 µs)", md)
        self.assertIn("| 10,000 leases held: renewals/min in the server's log | lower | 120,010/min |", ldlm)
        order = [ldlm.index(s) for s in ("uncontended acquire+release p50", "uncontended try_acquire+release p50",
                                         "handoff (release → waiter holds) p50", "one RPC round trip",
                                         "16 contenders", "time to take", "requests/min", "in the server's log",
                                         "memory per lease", "leases lost")]
        self.assertEqual(order, sorted(order))

    def test_cli(self):
        out = Path(self.dir.name) / "out"
        if not HAVE_MATPLOTLIB:
            self.skipTest("matplotlib not installed")
        self.assertEqual(report.main([str(self.results), str(out)]), 0)
        self.assertTrue((out / "report.md").read_text().startswith("# polylock benchmarks"))
        self.assertEqual((out / "chart.png").read_bytes()[:8], b"\x89PNG\r\n\x1a\n")

    def test_sparse_results(self):
        # A backend with latencies only, one with throughput only, junk lines, nulls.
        path = Path(self.dir.name) / "sparse.jsonl"
        rows = _figures("x", "polylock", uncontended_p50_us=5.0) + _figures(
            "y", "peer", throughput_8_contenders_per_s=10.0) + _figures("z", "polylock", handoff_p50_us=None)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n\n")
        results = report.Results.load(path)
        md = report.markdown(results)
        self.assertIn("## y", md)
        self.assertIn("- **z**: —", md)
        if HAVE_MATPLOTLIB:
            report.chart(results, Path(self.dir.name) / "sparse.png")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        write(sample(), sys.argv[2])
    else:
        unittest.main()
