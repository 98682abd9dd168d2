"""Where things are: the source tree, the build tree (SKY_BUILD_DIR, set by
CTest; <source>/build by default) and its binaries, and whether that build
is sanitized (its daemons are then slower: waits scale with SLOW)."""
import os

SOURCE_DIR = os.environ.get(
    "SKY_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.environ.get("SKY_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
SKY = os.path.join(BUILD_DIR, "controller", "sky")
SKY_CONTROLLER = os.path.join(BUILD_DIR, "controller", "sky-controller")
SKY_LOCALCLOUD = os.path.join(BUILD_DIR, "localcloud", "sky-localcloud")
SKY_LB = os.path.join(BUILD_DIR, "lb", "sky-lb")
SKY_AGENT = os.path.join(BUILD_DIR, "replica_agent", "sky-agent")


def sanitized(build_dir=BUILD_DIR):
    """True under ASan/UBSan: env SKY_SANITIZED=1 or SANITIZE set in the CMake cache."""
    if os.environ.get("SKY_SANITIZED") == "1":
        return True
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("SANITIZE:"):
                    return bool(line.split("=", 1)[1].strip())
    except OSError:
        pass
    return False


# Waits for the daemons scale with this under the sanitizers.
SLOW = 2.0 if sanitized(BUILD_DIR) else 1.0


def require_binaries(*paths):
    """Raises AssertionError naming the ones that are not built (a test then
    fails, never skips: CI builds everything before it tests)."""
    missing = [p for p in paths if not os.access(p, os.X_OK)]
    if missing:
        raise AssertionError("missing binaries (build the tree first): %s" % ", ".join(missing))
