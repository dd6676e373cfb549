#!/usr/bin/env python3
"""Run a command on one GPU of this machine that no other worker holds.

    python scripts/gpu_slot.py [--lock-dir DIR] [--] celery -A nasweb worker -Q gpu ...

Docker gives every replica of a service the same GPUs (``count: 1`` is GPU 0
for each), so ``docker compose up --scale worker-gpu=N`` would pile N workers
onto one card. Instead every replica sees all GPUs and runs through this
script: it takes an exclusive lock on ``DIR/gpu<i>.lock`` for the first free
GPU i (DIR is a volume the replicas share), sets ``CUDA_VISIBLE_DEVICES`` to
that GPU and execs the command, which holds the lock until it exits. With no
GPU visible the command runs on the CPU unchanged; when every GPU is taken
this exits with status 75 (EX_TEMPFAIL) so that Docker's restart policy
tries again later.
"""
import argparse
import fcntl
import os
import sys


def visible_gpus() -> list[str]:
    """The GPU ids this process may use, as CUDA_VISIBLE_DEVICES would name them."""
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # no torch, no driver: train on the CPU
        count = 0
    preset = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if preset:
        return [g.strip() for g in preset.split(",") if g.strip()][:count]
    return [str(i) for i in range(count)]


def claim(gpus: list[str], lock_dir: str) -> tuple[str, int] | None:
    """Lock the first free GPU; return (gpu id, open lock fd) or None."""
    os.makedirs(lock_dir, exist_ok=True)
    for gpu in gpus:
        fd = os.open(os.path.join(lock_dir, f"gpu{gpu}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.set_inheritable(fd, True)  # the exec'd command keeps holding it
        return gpu, fd
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock-dir", default="/tmp/nasweb-gpu-locks")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run")

    gpus = visible_gpus()
    if gpus:
        slot = claim(gpus, args.lock_dir)
        if slot is None:
            print(f"gpu_slot: all {len(gpus)} GPU(s) are held by other workers", file=sys.stderr)
            return 75
        os.environ["CUDA_VISIBLE_DEVICES"] = slot[0]
        print(f"gpu_slot: running on GPU {slot[0]}", file=sys.stderr, flush=True)
    else:
        print("gpu_slot: no GPU visible; running on the CPU", file=sys.stderr, flush=True)
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
