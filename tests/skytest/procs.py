"""Processes and network namespaces, seen from /proc and /run/netns."""
import os
import signal
import subprocess
import time


def pid_alive(pid):
    """True while <pid> runs; a zombie (PID 1 here may never reap it) is not alive."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def processes_naming(text, environ=True):
    """(pid, command line) of every live process, this one aside, whose command
    line (or, with <environ>, environment) contains <text>. A SKY_HOME names
    every process of it: controllers, the local cloud, agents, sky-lb and the
    user programs they start all carry it in their environment."""
    found = []
    needle = text.encode()
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
            env = b""
            if environ and needle not in cmd:
                with open("/proc/%s/environ" % d, "rb") as f:
                    env = f.read()
        except OSError:
            continue
        if (needle in cmd or needle in env) and pid_alive(int(d)):
            found.append((int(d), cmd.replace(b"\0", b" ").decode(errors="replace")))
    return found


def wait_gone(pid, timeout):
    """True once <pid> is gone, False if it still runs after <timeout> s."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_pid(pid, timeout=10):
    """SIGTERM, then SIGKILL after <timeout> s; returns once it is gone."""
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_gone(pid, timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone(pid, 10)


def kill_and_wait(pid, sig=signal.SIGKILL, timeout=10):
    """Sends <sig> and waits for the process to end; AssertionError if it survives."""
    os.kill(pid, sig)
    assert wait_gone(pid, timeout), "process %d survived signal %d" % (pid, sig)
    return pid


def rss_kib(pid):
    """VmRSS of <pid> in KiB (0 if the process is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def netns_list():
    """Names of the machine's named network namespaces."""
    try:
        return sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []


def links():
    """Names of the network interfaces of this namespace."""
    return sorted(os.listdir("/sys/class/net"))


def netns_pids(ns):
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split() if p.strip()]
