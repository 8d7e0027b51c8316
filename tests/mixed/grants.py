"""One backend's run of the mixed-client fault suite (tests/mixed/run.sh):
contenders in every language take the same names while faults are injected
at moments drawn from a seeded schedule, until GRANTS grants were made and
every scheduled fault ran. Then the history is judged twice: by
tests/mixed/check.py (fenced store and time) and by Porcupine
(tests/mixed/porcupine).

    grants.py --backend B --url URL --grants N --seed S --commands FILE
              --work DIR --porcupine BIN [--servers DIR] [--ttl-ms MS]
              [--hold-ms MS]

The contenders (tests/mixed/contenders.sh wrote their command lines in
FILE) append their operations to one history; this script hosts the fenced
store they write through (a Unix socket: `WRITE NAME TOKEN ID` → `OK` or
`STALE HIGHEST`) and appends its own lines to the history: `fault KIND
TARGET - - - T0 T1 -` for every fault and `killed LANG PID - - - T T -` for
every contender it killed.

Faults per backend (KIND: what happens):
- kill9: a contender holding a lease is killed with SIGKILL (a new one in
  its language takes its place);
- stop: a holding contender is stopped (SIGSTOP) for two TTLs, then
  continued: its lease must be reported lost, its writes rejected once a
  newer holder wrote;
- partition: a holding contender's proxy (tests/support/cut_proxy.py, one
  per contender) is cut for two TTLs, then restored;
- restart: the server restarts (FerretDB, PostgreSQL, LDLM) or, on the
  Consul cluster, a follower is killed with SIGKILL and started again;
- leader-kill: the Consul cluster's leader is killed with SIGKILL, a new
  one elected, then the old one started again;
- force (memory://, in-process only): the Rust contender's own thread
  force-releases names (POLYLOCK_CONTEND_FORCE_MS); counted from its
  `force` lines.

The schedule: each kind ⌈GRANTS / 1000⌉ times, in an order shuffled by the
seed, each at a grant count drawn by the seed between 5% and 90% of GRANTS;
a fault whose moment came while another ran starts right after it.
"""

import argparse
import os
import random
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "tests", "mixed")
SERVERS = os.path.join(ROOT, "tests", "servers")
CUT_PROXY = os.path.join(ROOT, "tests", "support", "cut_proxy.py")

FAULTS = {
    "memory": [],
    "consul": ["kill9", "stop", "partition", "restart", "leader-kill"],
    "ferretdb": ["kill9", "stop", "partition", "restart"],
    "mongodb": ["kill9", "stop", "partition"],
    "postgres": ["kill9", "stop", "partition", "restart"],
    "ldlm": ["kill9", "stop", "partition", "restart"],
}
RESTART_SCRIPT = {"ferretdb": "ferretdb.sh", "postgres": "postgres.sh", "ldlm": "ldlm.sh"}
MEMORY_THREADS = 6
MEMORY_FORCE_MS = 400


def monotonic_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class History:
    """The shared history file; this script's own lines, one write each."""

    def __init__(self, path):
        self.path = path
        open(path, "a").close()
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self.lock = threading.Lock()

    def append(self, *fields):
        line = " ".join(str(f) for f in fields) + "\n"
        with self.lock:
            os.write(self.fd, line.encode())


class FencedStore(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Accepts a write for a name only if its token is not below the highest
    accepted one for that name (token `-`: no fencing, always accepted);
    logs every decision in arrival order."""

    daemon_threads = True

    def __init__(self, path, log_path):
        self.highest = {}
        self.decisions = threading.Lock()
        self.log = open(log_path, "a", buffering=1)
        super().__init__(path, StoreHandler)

    def decide(self, name, token, ident):
        with self.decisions:
            if token == "-":
                answer = "OK"
            else:
                value = int(token)
                highest = self.highest.get(name, -1)
                if value >= highest:
                    self.highest[name] = value
                    answer = "OK"
                else:
                    answer = f"STALE {highest}"
            self.log.write(f"{name} {token} {ident} {answer.split()[0].lower()}\n")
            return answer


class StoreHandler(socketserver.StreamRequestHandler):
    def handle(self):
        try:
            for raw in self.rfile:
                fields = raw.decode(errors="replace").split()
                if len(fields) == 4 and fields[0] == "WRITE" and (fields[2] == "-" or fields[2].isdigit()):
                    answer = self.server.decide(fields[1], fields[2], fields[3])
                else:
                    answer = "ERROR bad request"
                self.wfile.write((answer + "\n").encode())
        except (ConnectionResetError, BrokenPipeError):
            pass  # a contender killed with kill -9 mid-request


class Proxy:
    """One contender's cuttable loopback proxy to the server."""

    def __init__(self, target):
        self.process = subprocess.Popen(
            [sys.executable, CUT_PROXY, target],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline().split()
        if line[:1] != ["listening"]:
            raise RuntimeError(f"cut_proxy.py to {target} did not start")
        self.address = line[1]

    def command(self, what):
        self.process.stdin.write(what + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if answer != f"ok {what}":
            raise RuntimeError(f"proxy {what}: {answer!r}")

    def close(self):
        try:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self.process.kill()


class Contender:
    """One contender process (restarted in place after a kill)."""

    def __init__(self, run, lang, command, url, index):
        self.run, self.lang, self.command, self.url, self.index = run, lang, command, url, index
        self.starts = 0
        self.process = None
        self.start()

    def start(self):
        args = self.run.args
        seed = args.seed * 1000 + self.index * 37 + self.starts
        self.starts += 1
        env = dict(os.environ)
        if args.backend == "memory":
            env["POLYLOCK_CONTEND_THREADS"] = str(MEMORY_THREADS)
            env["POLYLOCK_CONTEND_FORCE_MS"] = str(MEMORY_FORCE_MS)
        self.process = subprocess.Popen(
            self.command + ["run", self.url, self.run.history.path, self.run.store_path,
                            self.run.names_arg, str(args.ttl_ms), str(args.hold_ms), str(seed),
                            self.run.stop_path],
            env=env, stdout=subprocess.DEVNULL, stderr=self.run.stderr,
        )

    @property
    def pid(self):
        return self.process.pid


class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        os.makedirs(args.work, exist_ok=True)
        tag = f"{args.backend}-{args.seed}"
        self.history = History(os.path.join(args.work, f"history-{tag}.log"))
        self.store_log = os.path.join(args.work, f"store-{tag}.log")
        self.store_path = os.path.join(args.work, f"store-{tag}.sock")
        self.stop_path = os.path.join(args.work, f"stop-{tag}")
        self.stderr = open(os.path.join(args.work, f"contenders-{tag}.err"), "a")
        for path in (self.store_path, self.stop_path):
            if os.path.exists(path):
                os.unlink(path)
        prefix = f"mixed/{args.backend}-{args.seed}-{os.getpid()}-{time.time_ns()}"
        self.limits = {f"{prefix}/m{i}": 1 for i in range(1, 4)}
        self.limits[f"{prefix}/s1"] = 2
        self.names_arg = ",".join(f"{n}={l}" for n, l in self.limits.items())
        self.proxies = []
        self.contenders = []
        self.faults_done = 0
        self.scan_lock = threading.Lock()
        self.scanned, self.grants, self.holding = 0, 0, {}
        self.fault_error = None

    # --- progress, read back from the history ---

    def scan(self):
        """(grants so far, {pid: holding?}), reading the history's new lines."""
        with self.scan_lock, open(self.history.path, "rb") as history:
            history.seek(self.scanned)
            while True:
                line = history.readline()
                if not line.endswith(b"\n"):
                    break  # none left, or one still being written
                self.scanned += len(line)
                fields = line.decode(errors="replace").split()
                if len(fields) != 9:
                    continue
                op, pid, result = fields[0], fields[2], fields[8]
                if op == "acquire" and result == "ok":
                    self.grants += 1
                    self.holding[pid] = True
                elif op in ("release", "lost"):
                    self.holding[pid] = False
            return self.grants, dict(self.holding)

    def holding_contender(self):
        """A contender holding a lease now if any (seeded pick), else any."""
        _grants, holding = self.scan()
        live = [c for c in self.contenders if c.process.poll() is None]
        holders = [c for c in live if holding.get(str(c.pid))]
        return self.rng.choice(holders or live)

    # --- faults ---

    def schedule(self):
        kinds = FAULTS[self.args.backend]
        repeat = max(1, -(-self.args.grants // 1000))
        plan = [kind for kind in kinds for _ in range(repeat)]
        self.rng.shuffle(plan)
        moments = sorted(self.rng.randint(self.args.grants // 20, self.args.grants * 9 // 10)
                         for _ in plan)
        return list(zip(moments, plan))

    def pause(self):
        """A fault's length: two TTLs and a half second (past the TTL)."""
        time.sleep(2 * self.args.ttl_ms / 1000 + 0.5)

    def script(self, name, *args):
        subprocess.run(["bash", os.path.join(SERVERS, name), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=self.stderr, timeout=180)

    def inject(self, kind):
        t0 = monotonic_ns()
        target = "server"
        if kind == "kill9":
            victim = self.holding_contender()
            target = f"{victim.lang}/{victim.pid}"
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait(timeout=30)
            self.history.append("killed", victim.lang, victim.pid, "-", "-", "-", t0, t0, "-")
            victim.start()
        elif kind == "stop":
            victim = self.holding_contender()
            target = f"{victim.lang}/{victim.pid}"
            victim.process.send_signal(signal.SIGSTOP)
            try:
                self.pause()
            finally:
                victim.process.send_signal(signal.SIGCONT)
        elif kind == "partition":
            victim = self.holding_contender()
            target = f"{victim.lang}/{victim.pid}"
            proxy = self.proxies[victim.index]
            proxy.command("cut")
            try:
                self.pause()
            finally:
                proxy.command("restore")
        elif kind == "restart" and self.args.backend == "consul":
            state = os.path.join(self.args.servers, "consul-cluster")
            leader = self.consul_leader(state)
            member = self.rng.choice([m for m in ("server1", "server2", "server3") if m != leader])
            target = member
            self.kill_pidfile(os.path.join(state, f"{member}.pid"))
            self.script("consul.sh", "revive", state, member)
        elif kind == "restart":
            target = self.args.backend
            self.script(RESTART_SCRIPT[self.args.backend], "restart",
                        os.path.join(self.args.servers, self.args.backend))
        elif kind == "leader-kill":
            state = os.path.join(self.args.servers, "consul-cluster")
            target = self.consul_leader(state)
            self.script("consul.sh", "kill-leader", state)
            self.script("consul.sh", "revive", state, target)
        else:
            raise RuntimeError(f"no fault {kind}")
        self.history.append("fault", kind, target, "-", "-", "-", t0, monotonic_ns(), "-")

    @staticmethod
    def consul_leader(state):
        url = subprocess.run(["bash", os.path.join(SERVERS, "consul.sh"), "leader", state],
                             check=True, capture_output=True, text=True, timeout=60).stdout.strip()
        for member in ("server1", "server2", "server3"):
            with open(os.path.join(state, f"{member}.url")) as f:
                if f.read().strip() == url:
                    return member
        raise RuntimeError(f"no member serves {url}")

    @staticmethod
    def kill_pidfile(path):
        with open(path) as f:
            pid = int(f.read().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        os.unlink(path)

    def faults(self, plan):
        try:
            for moment, kind in plan:
                deadline = time.monotonic() + self.args.deadline
                while self.scan()[0] < moment:
                    if time.monotonic() > deadline or os.path.exists(self.stop_path):
                        return
                    time.sleep(0.1)
                self.inject(kind)
                self.faults_done += 1
        except Exception as error:  # reported as the run's failure
            self.fault_error = f"{type(error).__name__}: {error}"

    # --- the run ---

    def urls(self):
        """The server URL(s) contenders reach, one per contender slot."""
        args = self.args
        if args.backend == "consul":
            state = os.path.join(args.servers, "consul-cluster")
            urls = []
            for member in ("server1", "server2", "server3"):
                with open(os.path.join(state, f"{member}.url")) as f:
                    urls.append("consul://" + f.read().strip().removeprefix("http://"))
            return urls
        return [args.url]

    def start(self):
        commands = []
        with open(self.args.commands) as f:
            for line in f:
                fields = line.split()
                if fields:
                    commands.append((fields[0], fields[1:]))
        if self.args.backend == "memory":
            commands = [(lang, cmd) for lang, cmd in commands if lang == "rust"]
        if self.args.backend == "consul":
            # Earlier suites kill members and may leave them down (the
            # fault suite's leader kill): all three are up before the run.
            self.script("consul.sh", "heal", os.path.join(self.args.servers, "consul-cluster"))
        urls = self.urls()
        for index, (lang, command) in enumerate(commands):
            url = urls[index % len(urls)]
            if self.args.backend != "memory":
                host = re.search(r"127\.0\.0\.1:\d+", url)
                proxy = Proxy(host.group(0))
                self.proxies.append(proxy)
                url = url.replace(host.group(0), proxy.address, 1)
            self.contenders.append(Contender(self, lang, command, url, index))

    def finish(self):
        open(self.stop_path, "w").close()
        deadline = time.monotonic() + 60
        for contender in self.contenders:
            try:
                contender.process.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                contender.process.kill()
                contender.process.wait(timeout=30)
                self.history.append("killed", contender.lang, contender.pid, "-", "-", "-",
                                    monotonic_ns(), monotonic_ns(), "-")
        for proxy in self.proxies:
            proxy.close()

    def go(self):
        store = FencedStore(self.store_path, self.store_log)
        threading.Thread(target=store.serve_forever, daemon=True).start()
        started = time.monotonic()
        self.start()
        plan = self.schedule()
        faulter = threading.Thread(target=self.faults, args=(plan,), daemon=True)
        faulter.start()
        deadline = started + self.args.deadline
        while time.monotonic() < deadline:
            if self.scan()[0] >= self.args.grants and not faulter.is_alive():
                break
            dead = [c for c in self.contenders if c.process.poll() not in (None, 0)]
            if dead and not faulter.is_alive():
                break
            time.sleep(0.2)
        timed_out = time.monotonic() >= deadline
        self.finish()
        faulter.join(timeout=5)
        store.shutdown()
        elapsed = time.monotonic() - started
        problems = []
        if timed_out:
            problems.append(f"not done within {self.args.deadline} s")
        if self.fault_error:
            problems.append(f"fault injection failed: {self.fault_error}")
        if self.faults_done != len(plan):
            problems.append(f"{self.faults_done} of {len(plan)} scheduled faults ran")
        failed = [f"{c.lang} exited {c.process.returncode}" for c in self.contenders
                  if c.process.returncode not in (0, None)]
        problems.extend(failed)
        return elapsed, problems

    def judge(self, elapsed, problems):
        limits = ",".join(f"{n}={l}" for n, l in self.limits.items())
        langs = sorted({c.lang for c in self.contenders})
        status = 0
        fenced = subprocess.run(
            [sys.executable, os.path.join(HERE, "check.py"), "judge", self.history.path,
             "--store-log", self.store_log, "--limits", limits, "--backend", self.args.backend,
             "--seed", str(self.args.seed), "--grants", str(self.args.grants),
             "--elapsed", f"{elapsed:.0f}", "--langs", ",".join(langs),
             *[arg for p in problems for arg in ("--problem", p)]],
        )
        status |= fenced.returncode
        porcupine = subprocess.run(
            [self.args.porcupine, "-limits", limits, "-out", self.args.work,
             "-label", self.args.backend, self.history.path],
        )
        status |= porcupine.returncode
        return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", required=True, choices=sorted(FAULTS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--grants", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--commands", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--porcupine", required=True)
    parser.add_argument("--servers", help="POLYLOCK_TEST_FAULTS_DIR (servers faults restart)")
    parser.add_argument("--ttl-ms", type=int, default=3000)
    parser.add_argument("--hold-ms", type=int, default=10)
    parser.add_argument("--deadline", type=int,
                        help="seconds before the run gives up (default 300 + GRANTS / 2)")
    args = parser.parse_args()
    if args.deadline is None:
        args.deadline = 300 + args.grants // 2
    if FAULTS[args.backend] and any(k in ("restart", "leader-kill") for k in FAULTS[args.backend]) \
            and not args.servers:
        parser.error(f"--servers is needed to restart {args.backend}")
    run = Run(args)
    elapsed, problems = run.go()
    return run.judge(elapsed, problems)


if __name__ == "__main__":
    sys.exit(main())
