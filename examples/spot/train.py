#!/usr/bin/env python3
"""A training-like program for managed spot jobs (Python 3 standard library only).

It runs --steps steps of --step-seconds each. After every step it saves a
checkpoint (JSON with the last finished step) to <output_dir>/<run_name>/,
atomically (write a temporary file, fsync, rename), and appends one line
"run_id,step,attempt" to <output_dir>/<run_name>/steps.log. On start it
resumes after the newest checkpoint, so a job that is preempted and
relaunched (sky spot launch recovers it with the same $SKYPILOT_RUN_ID)
carries on where it stopped: only the step that was running when the
instance vanished is done again. On SIGTERM (what a managed job gets on a
spot preemption notice) it stops before finishing the current step and
exits, its checkpoint up to date: nothing is done twice.

    python3 train.py --run_name $SKYPILOT_RUN_ID --output_dir /checkpoint/train/
"""
import argparse
import json
import os
import signal
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run_name", default=os.environ.get("SKYPILOT_RUN_ID", "local"),
                   help="identifies the run across recoveries (default $SKYPILOT_RUN_ID)")
    p.add_argument("--output_dir", default="/checkpoint/train/",
                   help="where checkpoints go (a MOUNT bucket survives preemptions)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--step-seconds", type=float, default=0.5)
    p.add_argument("--fail-at-step", type=int, default=0,
                   help="exit 1 when reaching this step (to try failure handling); 0 = never")
    return p.parse_args()


def load_checkpoint(ckpt_dir):
    """The newest checkpoint's content, or None."""
    best = None
    try:
        names = os.listdir(ckpt_dir)
    except FileNotFoundError:
        return None
    for name in names:
        if not (name.startswith("ckpt-") and name.endswith(".json")):
            continue
        try:
            with open(os.path.join(ckpt_dir, name)) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue  # a torn file cannot exist (rename), but stay safe
        if best is None or doc["step"] > best["step"]:
            best = doc
    return best


def save_checkpoint(ckpt_dir, doc, keep=3):
    tmp = os.path.join(ckpt_dir, ".ckpt.tmp.%d" % os.getpid())
    with open(tmp, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(ckpt_dir, "ckpt-%06d.json" % doc["step"]))
    # Keep only the newest few, like --save_total_limit.
    old = sorted(n for n in os.listdir(ckpt_dir) if n.startswith("ckpt-"))[:-keep]
    for n in old:
        try:
            os.unlink(os.path.join(ckpt_dir, n))
        except FileNotFoundError:
            pass


def main():
    args = parse_args()
    ckpt_dir = os.path.join(args.output_dir, args.run_name)
    os.makedirs(ckpt_dir, exist_ok=True)
    ckpt = load_checkpoint(ckpt_dir)
    start = ckpt["step"] + 1 if ckpt else 1
    # The attempt number counts the program's starts, checkpointed or not.
    marker = os.path.join(ckpt_dir, "starts")
    with open(marker, "a") as f:
        f.write("%s\n" % time.time())
    with open(marker) as f:
        attempt = sum(1 for _ in f)
    node = os.environ.get("SKYPILOT_CLUSTER_INFO", "{}")
    print("run %s attempt %d: %s from step %d of %d (%s)" % (
        args.run_name, attempt, "resuming" if ckpt else "starting", start, args.steps, node),
        flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))

    def work(seconds):
        """A step's work; False when SIGTERM came first."""
        end = time.monotonic() + seconds
        while not stop and time.monotonic() < end:
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))
        return not stop

    log = open(os.path.join(ckpt_dir, "steps.log"), "a")
    loss = ckpt["loss"] if ckpt else 10.0
    for step in range(start, args.steps + 1):
        if args.fail_at_step and step == args.fail_at_step:
            print("run %s attempt %d: step %d: simulated failure" % (
                args.run_name, attempt, step), flush=True)
            sys.exit(1)
        if not work(args.step_seconds):
            print("run %s attempt %d: SIGTERM: stopping, checkpointed through step %d" % (
                args.run_name, attempt, step - 1), flush=True)
            sys.exit(143)
        loss *= 0.95
        log.write("%s,%d,%d\n" % (args.run_name, step, attempt))
        log.flush()
        os.fsync(log.fileno())
        # Shown before it is checkpointed: a step is never saved without being shown.
        print("run %s attempt %d: step %d/%d loss %.4f" % (
            args.run_name, attempt, step, args.steps, loss), flush=True)
        save_checkpoint(ckpt_dir, {"step": step, "loss": loss, "attempt": attempt,
                                   "run_id": args.run_name})
    print("run %s: training done after %d steps" % (args.run_name, args.steps), flush=True)


if __name__ == "__main__":
    main()
