"""Polling a condition until it holds."""
import time


def wait_for(pred, timeout, what="condition", interval=0.05, deadline=None, tolerate=()):
    """Calls pred() every <interval> s until it returns something truthy, and
    returns that. Stops at <timeout> s or at the monotonic <deadline>, if
    sooner, with an AssertionError naming <what> and pred's last answer.
    Exceptions of the <tolerate> types count as "not yet" (the last one is
    reported)."""
    end = time.monotonic() + timeout
    if deadline is not None:
        end = min(end, deadline)
    last = None
    while True:
        try:
            last = pred()
            if last:
                return last
        except tolerate as e:
            last = e
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (
                timeout, what, last))
        time.sleep(interval)
