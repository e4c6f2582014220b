"""netlab: a throwaway PostgreSQL, flow-proxy networks and flow-distributed processes on one machine, for
Examples' bench-network and network-faults.

Every process started here (the server, the proxies, the workers) is ended when the script ends, however it
ends. Lines a process prints are kept with the time they arrived, so a script can tell when something was
said (a connection back, a drain).
"""
import atexit
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

EXAMPLES = os.path.dirname(os.path.abspath(__file__))
_ended = []  # what to stop at exit, last first


# SIGTERM ends the script as an exception would, so what it started is ended too (atexit)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


@atexit.register
def _end_all():
    for end in reversed(_ended):
        try:
            end()
        except Exception:
            pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def expected(n):
    """The sum of mix(x) over 0..<n, as flow-distributed's RESULT line gives it."""
    return sum(((x * 2654435761) & 0xFFFFFFFF) % 1000003 for x in range(n))


def report_rate(text):
    """The items/s of a pipeline report's "N items in T, R items/s" line in `text`, or 0.0 when there is none."""
    m = re.search(r"^\d+ items in .*, ([0-9.]+) (k |M )?items/s$", text, re.M)
    return float(m.group(1)) * {"k ": 1e3, "M ": 1e6, None: 1}[m.group(2)] if m else 0.0


def flow_distributed(path=None):
    """The flow-distributed binary: `path`, or Examples' release build (built first)."""
    if path:
        return path
    subprocess.run(["swift", "build", "-c", "release", "--product", "flow-distributed"], cwd=EXAMPLES, check=True,
                   stdout=subprocess.DEVNULL)
    out = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=EXAMPLES, check=True,
                         capture_output=True, text=True)
    return os.path.join(out.stdout.strip(), "flow-distributed")


class Postgres:
    """A PostgreSQL cluster in a temporary folder on a free loopback port (as root, run as `postgres`);
    None from `start()` when the server is not installed."""

    @staticmethod
    def start():
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in p.split("/")[4].split(".")])
        if not bins or not os.access(os.path.join(bins[-1], "initdb"), os.X_OK):
            return None
        return Postgres(bins[-1])

    def __init__(self, bin):
        self.bin, self.port = bin, free_port()
        self.data = tempfile.mkdtemp()
        if os.getuid() == 0:
            shutil.chown(self.data, "postgres")
        self._as_postgres(f"{bin}/initdb -D {self.data}/db -A trust -U postgres")
        self.options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        _ended.append(self._remove)
        self.up()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"
        self.version = subprocess.run([f"{bin}/postgres", "--version"], capture_output=True, text=True).stdout.split()[2]

    def _as_postgres(self, command):
        argv = ["su", "postgres", "-s", "/bin/sh", "-c", f"cd / && {command}"] if os.getuid() == 0 else ["sh", "-c", command]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    def up(self):
        self._as_postgres(f"{self.bin}/pg_ctl -D {self.data}/db -o '{self.options}' -l {self.data}/log -w start")

    def down(self):
        self._as_postgres(f"{self.bin}/pg_ctl -D {self.data}/db -m fast -w stop")

    def _remove(self):
        try:
            self._as_postgres(f"{self.bin}/pg_ctl -D {self.data}/db -m immediate -w stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.data, ignore_errors=True)


class Proxy:
    """One process's way to PostgreSQL: a flow-proxy (Examples/flow-proxy) and its control connection."""

    def __init__(self, name, upstream_port):
        self.name, self.port = name, free_port()
        control = free_port()
        self.process = subprocess.Popen(
            [os.path.join(EXAMPLES, "flow-proxy"), "--listen", f"127.0.0.1:{self.port}", "--to",
             f"127.0.0.1:{upstream_port}", "--control", f"127.0.0.1:{control}"], stdout=subprocess.PIPE, text=True)
        _ended.append(self.process.kill)
        self.process.stdout.readline()  # "listening on"
        for _ in range(100):
            try:
                self.control = socket.create_connection(("127.0.0.1", control))
                break
            except OSError:
                time.sleep(0.05)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def command(self, line):
        self.control.sendall((line + "\n").encode())
        answer = self.control.recv(200).decode().strip()
        if not answer.startswith("ok"):
            sys.exit(f"flow-proxy in front of {self.name}: {line}: {answer}")
        return answer


class Process:
    """A flow-distributed process whose output lines are kept with the time each arrived."""

    def __init__(self, name, argv, url):
        self.name, self.lines = name, []
        self.process = subprocess.Popen(argv, env={**os.environ, "DATABASE_URL": url}, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        _ended.append(self.process.kill)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait(self, timeout=None):
        code = self.process.wait(timeout)
        self.reader.join()
        return code

    def stop(self):
        """SIGTERM (a worker drains), then its exit status."""
        self.process.terminate()
        return self.wait()

    def said(self, text, after=0.0):
        """The first time a line containing `text` arrived after `after`, or None."""
        return next((at for at, line in list(self.lines) if at >= after and text in line), None)

    def text(self):
        return "\n".join(line for _, line in self.lines)
