#!/usr/bin/env python3
"""The whole genq stack on one machine, started for real.

One Stack is a directory holding a private MariaDB (data dir and socket),
nginx on a loopback port, a spawn-fcgi pool of genq-fcgi, genqd, and
simulated ComfyUI backends, each a separate process with a pid file and a
log. `./dev up` uses it with var/dev; every end-to-end test uses it with a
temporary directory and free ports, so stacks run side by side.

Command line: stack.py up|down|status --dir DIR [--port N] [--builddir B]
"""

import argparse
import fcntl
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

SRCDIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Lines in any log that mean a sanitizer caught something.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A port that is free now, picked below the kernel's ephemeral range:
    a port from bind(0) could be handed to another process's bind(0) (a
    simulator of a test running beside us) before our server binds it."""
    high = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(10000, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free port below the ephemeral range")


def listener_pid_owns(port, pid):
    """True when the socket listening on 127.0.0.1:port is one of pid's
    open files: tells our nginx apart from a stranger on the same port."""
    inodes = set()
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                addr, state, inode = cols[1], cols[3], cols[9]
                if state == "0A" and int(addr.split(":")[1], 16) == port:
                    inodes.add(f"socket:[{inode}]")
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            pass
    return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(what, predicate, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


class StackError(RuntimeError):
    pass


class Stack:
    """A genq stack rooted at `root`. Ports: nginx on `port` (0 = free one);
    simulators on port+1.. when port is given, else free ones."""

    def __init__(self, root, port=0, builddir=None, backends=2, fcgi_workers=4,
                 sim_run_ms=300, daemon_settings=None, openai_backends=0, sim_impl="python",
                 openai_sim_args=()):
        self.root = os.path.abspath(root)
        # "c": tests/sim/comfysim and tests/sim/oaisim, the benchmark's
        # simulators (tests/sim/README.md); "python": the tests' own.
        self.sim_impl = sim_impl
        self.builddir = os.path.abspath(builddir or os.environ.get(
            "GENQ_BUILDDIR", os.path.join(SRCDIR, "build")))
        self.nbackends = backends
        self.nopenai = openai_backends   # OpenAI-compatible simulators (queue llm)
        self.openai_sim_args = tuple(openai_sim_args)   # for each of them, at up()
        self.fcgi_workers = fcgi_workers
        self.sim_run_ms = sim_run_ms
        self.daemon_settings = daemon_settings or {}
        self.backend_keys = {}   # [backend_keys]: backend name -> bearer token
        self.logdir = os.path.join(self.root, "log")
        self.state_file = os.path.join(self.root, "stack.json")
        self.state = self._load_state(port)
        self._children = {}   # name -> Popen, for processes this object started

    # ---- paths -------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def bin(self, name):
        for sub in ("", "fcgi", "daemon", "ctl"):
            p = os.path.join(self.builddir, sub, name)
            if os.path.exists(p):
                return p
        raise StackError(f"{name} is not built under {self.builddir}")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.state['port']}"

    @property
    def config_path(self):
        return self.path("genq.conf")

    def _load_state(self, port):
        try:
            with open(self.state_file) as f:
                state = json.load(f)
            if port and state.get("port") != port:
                raise StackError(f"{self.root} was set up for port {state.get('port')}")
            return state
        except FileNotFoundError:
            pass
        # With a fixed port the simulators take the next ones; otherwise
        # each binds port 0 itself (no window for another stack to take it).
        sims = [(port + 1 + i) if port != 0 and port + 1 + i < 65536 else 0
                for i in range(self.nbackends)]
        return {"port": port or free_port(), "fixed_port": port != 0, "sim_ports": sims,
                "db_password": secrets.token_urlsafe(18)}

    def _save_state(self):
        os.makedirs(self.root, exist_ok=True)
        with open(self.state_file, "w") as f:
            json.dump(self.state, f, indent=1)

    # ---- process helpers ---------------------------------------------
    def _pidfile(self, name):
        return self.path("run", name + ".pid")

    def _read_pids(self, name):
        try:
            with open(self._pidfile(name)) as f:
                return [int(x) for x in f.read().split()]
        except (FileNotFoundError, ValueError):
            return []

    def running(self, name):
        pids = self._read_pids(name)
        return bool(pids) and all(pid_alive(p) for p in pids)

    def _spawn(self, name, argv, env=None):
        """Start argv detached (own session, survives the caller), logging
        stdout and stderr to log/NAME.log, and record its pid."""
        log = open(os.path.join(self.logdir, name + ".log"), "ab")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=env, cwd=self.root)
        log.close()
        self._children[name] = proc
        with open(self._pidfile(name), "w") as f:
            f.write(f"{proc.pid}\n")
        return proc

    def stop(self, name, sig=signal.SIGTERM, timeout=15.0):
        pids = self._read_pids(name)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            wait_for(f"{name} to stop", lambda: not any(pid_alive(p) for p in pids),
                     timeout=timeout)
        except TimeoutError:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            wait_for(f"{name} to die", lambda: not any(pid_alive(p) for p in pids))
        child = self._children.pop(name, None)
        if child is not None:
            child.wait()   # reap it
        try:
            os.unlink(self._pidfile(name))
        except FileNotFoundError:
            pass

    def kill(self, name):
        """kill -9, as a crash would."""
        self.stop(name, sig=signal.SIGKILL)

    # ---- MariaDB -----------------------------------------------------
    @property
    def db_socket(self):
        return self.path("run", "mysql.sock")

    def _mariadb_template(self):
        """An initialised, never-started data dir, made once per build dir:
        copying it is much faster than mariadb-install-db every time. Test
        modules start in parallel: one makes it under a lock, the others
        wait for it (two mariadb-install-db at once can fail)."""
        cache = os.path.join(self.builddir, ".stack-cache")
        tpl = os.path.join(cache, "mysql-template")
        os.makedirs(cache, exist_ok=True)
        with open(os.path.join(cache, "mysql-template.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.path.isdir(tpl):
                return tpl
            tmp = tpl + f".tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            proc = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={tmp}",
                                   "--auth-root-authentication-method=normal",
                                   "--skip-test-db", "--user=" + _user()],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise StackError("mariadb-install-db failed: " + proc.stderr.strip()[-2000:])
            os.rename(tmp, tpl)
        return tpl

    def start_mariadb(self):
        datadir = self.path("mysql")
        fresh = not os.path.isdir(datadir)
        if fresh:
            shutil.copytree(self._mariadb_template(), datadir, symlinks=True)
        self._spawn("mariadb", [
            "mariadbd", "--no-defaults", f"--datadir={datadir}",
            f"--socket={self.db_socket}", "--skip-networking",
            f"--pid-file={self.path('run', 'mariadbd.pid')}",
            "--user=" + _user(), "--innodb-buffer-pool-size=128M",
            "--innodb-flush-log-at-trx-commit=1", "--skip-log-bin",
            "--max-connections=500", "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_bin", "--skip-name-resolve",
            f"--log-error={os.path.join(self.logdir, 'mariadb-error.log')}",
        ])
        wait_for("MariaDB", lambda: self.sql("SELECT 1", check=False).returncode == 0,
                 timeout=60)
        if fresh:
            pw = self.state["db_password"]
            self.sql("CREATE DATABASE IF NOT EXISTS genq; "
                     f"CREATE USER IF NOT EXISTS 'genq'@'localhost' IDENTIFIED BY '{pw}'; "
                     "GRANT ALL ON genq.* TO 'genq'@'localhost'; "
                     "CREATE USER IF NOT EXISTS 'genq_report'@'localhost'; "
                     "GRANT SELECT ON genq.* TO 'genq_report'@'localhost';")

    def sql(self, statement, check=True, database=None):
        """Run SQL as the server's root over the private socket (test setup and
        assertions only; genq itself uses prepared statements)."""
        argv = ["mariadb", "--no-defaults", "-uroot", f"--socket={self.db_socket}",
                "--batch", "--skip-column-names"]
        if database:
            argv.append(database)
        proc = subprocess.run(argv + ["-e", statement], capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise StackError(f"SQL failed: {statement[:200]}: {proc.stderr.strip()}")
        return proc

    def query(self, statement):
        """Rows of a SELECT on the genq database, as lists of strings."""
        out = self.sql(statement, database="genq").stdout
        return [line.split("\t") for line in out.splitlines()]

    def scalar(self, statement):
        rows = self.query(statement)
        return rows[0][0] if rows else None

    # ---- configuration -----------------------------------------------
    def write_config(self):
        outputs = self.path("outputs")
        os.makedirs(outputs, exist_ok=True)
        daemon = {"poll_interval_ms": 200, "history_poll_ms": 50, "lease_s": 15,
                  "shutdown_grace_s": 10}
        daemon.update(self.daemon_settings)
        lines = [
            "; written by tests/e2e/stack.py for the local stack",
            "[database]", f"socket = {self.db_socket}", "user = genq",
            f"password = {self.state['db_password']}", "name = genq", "",
            "[http]", f"base_url = {self.url}", "max_body_bytes = 1048576",
            f"wake_socket = {self.path('run', 'genqd.wake')}",
            f"metrics_file = {self.path('run', 'fcgi-metrics')}", "",
            "[storage]", f"output_dir = {outputs}", "accel_prefix = /_genq_outputs/", "",
            "[daemon]", "id = genqd-1",
        ] + [f"{k} = {v}" for k, v in daemon.items()] + [
            # Webhook receivers of the tests and the demo run on 127.0.0.1.
            "", "[webhooks]", "allow_private = 127.0.0.1/32",
            "", "[log]", "level = info", ""]
        if self.backend_keys:
            lines += ["[backend_keys]"] + [f"{k} = {v}" for k, v in self.backend_keys.items()] + [""]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines))

    def write_nginx_config(self):
        with open(os.path.join(SRCDIR, "nginx", "genq-site.conf.in")) as f:
            site = f.read()
        values = {
            "@LISTEN@": f"127.0.0.1:{self.state['port']}",
            "@FCGI_SOCKET@": self.path("run", "fcgi.sock"),
            "@NGINX_MAX_BODY@": "8m",
            "@STATIC_ROOT@": os.path.join(SRCDIR, "nginx", "www"),
            "@ACCEL_PREFIX@": "/_genq_outputs/",
            "@OUTPUT_DIR@": self.path("outputs"),
        }
        for k, v in values.items():
            site = site.replace(k, v)
        with open(self.path("nginx", "genq-site.conf"), "w") as f:
            f.write(site)
        tmp = self.path("nginx", "tmp")
        main = f"""# written by tests/e2e/stack.py
worker_processes 1;
daemon off;
pid {self.path('run', 'nginx.pid.internal')};
error_log {os.path.join(self.logdir, 'nginx-error.log')} warn;
{"user root;" if os.geteuid() == 0 else ""}
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {os.path.join(self.logdir, 'nginx-access.log')};
    client_body_temp_path {tmp}/body;
    fastcgi_temp_path {tmp}/fastcgi;
    proxy_temp_path {tmp}/proxy;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {self.path('nginx', 'genq-site.conf')};
}}
"""
        with open(self.path("nginx", "nginx.conf"), "w") as f:
            f.write(main)

    # ---- components --------------------------------------------------
    def genqctl(self, *args, check=True):
        proc = subprocess.run([self.bin("genqctl"), "--config", self.config_path, *args],
                              capture_output=True, text=True,
                              env=dict(os.environ, GENQ_SQL_DIR=os.path.join(SRCDIR, "sql")))
        if check and proc.returncode != 0:
            raise StackError(f"genqctl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def start_sim(self, i, extra_args=()):
        """ComfyUI simulator i (simN), on its earlier port if it had one;
        extra_args go to comfyui_sim.py (a fault knob from the start)."""
        port = self.state["sim_ports"][i]
        name = f"sim{i + 1}"
        outdir = self.path(name)
        os.makedirs(outdir, exist_ok=True)
        logfile = os.path.join(self.logdir, name + ".log")
        offset = os.path.getsize(logfile) if os.path.exists(logfile) else 0
        prog = [os.path.join(self.builddir, "tests", "sim", "comfysim")] if self.sim_impl == "c" else \
            [sys.executable, "-u", os.path.join(SRCDIR, "tests", "sim", "comfyui_sim.py")]
        self._spawn(name, prog + [
            "--port", str(port), "--output-dir", outdir, "--name", name,
            "--run-ms", str(self.sim_run_ms), *extra_args])

        def bound():
            with open(logfile) as f:
                f.seek(offset)
                for line in f:
                    if line.startswith("listening port="):
                        self.state["sim_ports"][i] = int(line.split("=")[1])
                        return True
            if not self.running(name):
                raise StackError(f"simulator {i + 1} exited; see {logfile}")
            return False
        wait_for(f"simulator {i + 1}", bound)
        self._save_state()

    def sim_url(self, i):
        return f"http://127.0.0.1:{self.state['sim_ports'][i]}"

    def start_openai_sim(self, i, extra_args=()):
        """OpenAI-compatible simulator i (tests/sim/openai_sim.py, or
        tests/sim/oaisim with sim_impl "c"), named oaiN; with a fixed port it
        takes the ports after the ComfyUI ones. extra_args go to the
        simulator (--api-key KEY, a fault knob)."""
        ports = self.state.setdefault("oai_ports", [])
        while len(ports) <= i:
            p = self.state["port"] + 1 + self.nbackends + len(ports)
            ports.append(p if self.state.get("fixed_port") and p < 65536 else 0)
        name = f"oai{i + 1}"
        logfile = os.path.join(self.logdir, name + ".log")
        offset = os.path.getsize(logfile) if os.path.exists(logfile) else 0
        prog = [os.path.join(self.builddir, "tests", "sim", "oaisim")] if self.sim_impl == "c" else \
            [sys.executable, "-u", os.path.join(SRCDIR, "tests", "sim", "openai_sim.py")]
        self._spawn(name, prog + ["--port", str(ports[i]), "--name", name, *extra_args])

        def bound():
            with open(logfile) as f:
                f.seek(offset)
                for line in f:
                    if line.startswith("listening port="):
                        ports[i] = int(line.split("=")[1])
                        return True
            if not self.running(name):
                raise StackError(f"OpenAI simulator {i + 1} exited; see {logfile}")
            return False
        wait_for(f"OpenAI simulator {i + 1}", bound)
        self._save_state()

    def openai_url(self, i):
        return f"http://127.0.0.1:{self.state['oai_ports'][i]}"

    def start_fcgi(self):
        sock = self.path("run", "fcgi.sock")
        if os.path.exists(sock):
            os.unlink(sock)
        # spawn-fcgi forks the workers, writes their pids and exits; it
        # closes their stderr, so genq-fcgi writes its log itself.
        argv = ["spawn-fcgi", "-s", sock, "-M", "0660", "-F", str(self.fcgi_workers),
                "-P", self._pidfile("fcgi"), "--", self.bin("genq-fcgi"),
                "--config", self.config_path,
                "--log", os.path.join(self.logdir, "genq-fcgi.log")]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, cwd=self.root)
        if proc.returncode != 0:
            raise StackError(f"spawn-fcgi failed: {proc.stderr.strip()}")
        wait_for("FastCGI workers", lambda: len(self._read_pids("fcgi")) == self.fcgi_workers)

    def start_nginx(self):
        """Start nginx; a free port picked for a test can be taken by someone
        else before nginx binds it, so then pick another and try again."""
        os.makedirs(self.path("nginx", "tmp"), exist_ok=True)
        for _ in range(5):
            self.write_nginx_config()
            proc = self._spawn("nginx", ["nginx", "-p", self.path("nginx"), "-c",
                                         self.path("nginx", "nginx.conf")])
            # Open but not nginx's own socket: someone else holds the port,
            # and nginx will give up binding it and exit.
            try:
                wait_for("nginx", lambda: listener_pid_owns(self.state["port"], proc.pid) or
                         proc.poll() is not None)
            except TimeoutError:
                raise StackError("nginx did not start; see log/nginx-error.log")
            if proc.poll() is None:
                return
            proc.wait()
            self._children.pop("nginx", None)
            if self.state.get("fixed_port"):
                raise StackError(f"nginx could not listen on port {self.state['port']}")
            self.state["port"] = free_port()
            self._save_state()
            self.write_config()       # base_url follows the port
        raise StackError("nginx could not find a free port")

    def start_genqd(self, name="genqd", config=None, env=None):
        """genqd NAME with the stack's configuration (or config); env adds
        to the environment (NOTIFY_SOCKET, say)."""
        argv = [self.bin("genqd"), "--config", config or self.config_path]
        self._spawn(name, argv, env=dict(os.environ, **env) if env else None)

    def write_genqd_config(self, name, daemon_id, **settings):
        """A configuration file for one more genqd on this stack (several
        genqd against one database): the stack's own file with another
        [daemon] id, its own wake socket, and `settings` overriding [daemon]
        keys. Returns its path; start it with start_genqd(name, path)."""
        with open(self.config_path) as f:
            lines = f.read().split("\n")
        out, section = [], None
        for line in lines:
            key = line.split("=", 1)[0].strip()
            if line.startswith("["):
                if section == "[daemon]":
                    out += [f"{k} = {v}" for k, v in settings.items()]
                section = line.strip()
            elif section == "[daemon]" and key == "id":
                line = f"id = {daemon_id}"
            elif section == "[daemon]" and key in settings:
                continue
            elif section == "[http]" and key == "wake_socket":
                line = f"wake_socket = {self.path('run', name + '.wake')}"
            out.append(line)
        path = self.path(name + ".conf")
        with open(path, "w") as f:
            f.write("\n".join(out))
        return path

    def restart_mariadb(self, pause=0.0, sig=signal.SIGTERM):
        """Stop MariaDB (SIGTERM, as an operator's restart would; SIGKILL for
        a crash), wait `pause` seconds, and start it again on the same data
        directory."""
        self.stop("mariadb", sig=sig, timeout=60)
        time.sleep(pause)
        self.start_mariadb()

    # ---- the whole stack ---------------------------------------------
    def up(self, seed=True):
        """Start whatever is not running; leave the rest alone."""
        for d in ("run", "log", "nginx"):
            os.makedirs(self.path(d), exist_ok=True)
        self._save_state()
        self.write_config()
        if not self.running("mariadb"):
            self.start_mariadb()
        self.genqctl("migrate")
        for i in range(self.nbackends):
            if not self.running(f"sim{i + 1}"):
                self.start_sim(i)
        for i in range(self.nopenai):
            if not self.running(f"oai{i + 1}"):
                self.start_openai_sim(i, self.openai_sim_args)
        if seed:
            self.seed()
        if not self.running("nginx"):
            self.start_nginx()
        if not self.running("fcgi"):
            self.start_fcgi()
        if not self.running("genqd"):
            self.start_genqd()
        wait_for("healthz", lambda: _http_status(self.url + "/healthz") == 200)
        return self

    def seed(self):
        """Backends for the image queue (idempotent)."""
        have = self.genqctl("backend", "list").stdout
        for i in range(self.nbackends):
            name = f"sim{i + 1}"
            if name not in have.split():
                self.genqctl("backend", "add", name, "--type", "comfyui",
                             "--url", self.sim_url(i), "--queues", "image")
        if self.nopenai and self.scalar("SELECT COUNT(*) FROM queues WHERE name = 'llm'") == "0":
            self.genqctl("queue", "add", "llm", "--price-per-job", "0.1",
                         "--price-per-second", "0.01", "--timeout", "300")
        for i in range(self.nopenai):
            name = f"oai{i + 1}"
            if name not in have.split():
                self.genqctl("backend", "add", name, "--type", "openai",
                             "--url", self.openai_url(i), "--queues", "llm")

    def add_user(self, name, tier="pro", credits="100", admin=False):
        """Create a user with credits; returns a new API key for it."""
        self.genqctl("user", "add", name, "--tier", tier)
        if credits:
            self.genqctl("credits", "grant", name, str(credits))
        args = ["key", "create", name] + (["--admin"] if admin else [])
        return self.genqctl(*args).stdout.strip()

    def down(self):
        # Every genqd this stack started, the extra ones of multi-daemon tests too.
        daemons = sorted(f[:-4] for f in os.listdir(self.path("run"))
                         if f.startswith("genqd") and f.endswith(".pid")) \
            if os.path.isdir(self.path("run")) else []
        for name in daemons + ["nginx", "fcgi"] + [f"sim{i + 1}" for i in range(self.nbackends)] + \
                [f"oai{i + 1}" for i in range(self.nopenai)]:
            if self._read_pids(name):
                self.stop(name)
        if self._read_pids("mariadb"):
            self.stop("mariadb", timeout=60)

    def sanitizer_reports(self):
        """Sanitizer findings in any log: a test run with these has failed."""
        found = []
        if not os.path.isdir(self.logdir):
            return found
        for fname in sorted(os.listdir(self.logdir)):
            with open(os.path.join(self.logdir, fname), errors="replace") as f:
                for line in f:
                    if any(m in line for m in SANITIZER_MARKS):
                        found.append(f"{fname}: {line.rstrip()}")
        return found

    def status(self):
        names = ["mariadb", "fcgi", "nginx", "genqd"] + \
            [f"sim{i + 1}" for i in range(self.nbackends)] + \
            [f"oai{i + 1}" for i in range(self.nopenai)]
        return {n: self.running(n) for n in names}


def _user():
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["up", "down", "status"])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--builddir")
    ap.add_argument("--backends", type=int, default=2)
    ap.add_argument("--openai-backends", type=int, default=1,
                    help="OpenAI-compatible simulators serving the llm queue")
    args = ap.parse_args()
    stack = Stack(args.dir, port=args.port, builddir=args.builddir, backends=args.backends,
                  openai_backends=args.openai_backends)
    if args.action == "up":
        stack.up()
        print(f"GENQ_URL={stack.url}")
    elif args.action == "down":
        stack.down()
    else:
        for name, ok in stack.status().items():
            print(f"{name:10} {'running' if ok else 'stopped'}")


if __name__ == "__main__":
    main()
