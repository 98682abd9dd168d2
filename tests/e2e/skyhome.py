"""Process lookup shared by the e2e helpers (serve_util, spot_util)."""
import os


def processes_naming(path):
    """(pid, argv) of every live process whose command line or environment
    names <path> (a SKY_HOME: controllers, the local cloud, agents, sky-lb and
    the user programs they start all carry it). Zombies are skipped: PID 1
    here does not reap them, and they hold nothing."""
    found = []
    needle = path.encode()
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
            try:
                with open("/proc/%s/environ" % d, "rb") as f:
                    env = f.read()
            except OSError:
                env = b""
            with open("/proc/%s/stat" % d) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if needle in cmd or needle in env:
            found.append((int(d), cmd.replace(b"\0", b" ").decode(errors="replace")))
    return found
