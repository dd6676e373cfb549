"""Data pipeline: our on-device batches against torch.utils.data.DataLoader.

Ours is the data path of ``workers.training.train_epochs``: the split lives
as one tensor on the training device, each epoch draws a shuffled index,
and ``workers.training.Augmenter`` (built once per candidate: it zero-pads
the set once, as airbench does) gives each batch with every image augmented
on the device: its own random crop and, for "crop_flip", its own horizontal
flip, vectorised over the batch (one index_select, one gather). The baselines do the same work per sample: the
same tensors through a ``DataLoader`` (shuffle, batch size 64, default
collate) whose ``__getitem__`` pads, crops and flips one image, with 0 and 2
worker processes, and a torchvision-style data set (uint8 images, ToImage,
ToDtype, Normalize, RandomCrop with the same padding, RandomHorizontalFlip).
The CIFAR-sized set uses "crop_flip" (pad 2 + flip), digits "shift" (pad 1,
no flip: the worker's default, digits must not be mirrored).

Two measurements per data set: the data path alone (batches produced and
on the device), and the same with a tiny model step per batch (a linear
classifier, SGD), which is what a training loop sees. Data sets: digits
(the training split the worker uses, 1x8x8) and a synthetic CIFAR-sized
set (3x32x32, random). Steady state: one warm-up epoch, then the best
epoch of the timed ones; DataLoader workers are persistent.

    .venv/bin/python bench/data_pipeline.py [--quick] [--device cpu|cuda]
"""
from __future__ import annotations

import random
import time

from common import Timer, base_parser, busy_warning, machine, rounded, shown, table, write_results

BATCH = 64


class CroppedTensors:
    """A map-style data set over tensors doing, per sample, what the worker does per batch:
    a random crop of the zero-padded image and, when ``flip``, a random horizontal flip."""

    def __init__(self, x, y, pad: int, flip: bool):
        self.x, self.y, self.pad, self.flip = x, y, pad, flip
        self.rng = random.Random(0)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        import torch.nn.functional as F

        p, (_, h, w) = self.pad, self.x[i].shape
        dy, dx = self.rng.randint(0, 2 * p), self.rng.randint(0, 2 * p)
        image = F.pad(self.x[i], (p, p, p, p))[:, dy:dy + h, dx:dx + w]
        if self.flip and self.rng.random() < 0.5:
            image = image.flip(-1)
        return image, self.y[i]


class TorchvisionStyle:
    """What a torchvision data set does: uint8 HxWxC images, transforms per sample."""

    def __init__(self, x, y, pad: int, flip: bool):
        import torch
        from torchvision.transforms import v2

        lo, hi = x.amin(), x.amax()
        self.images = ((x - lo) / (hi - lo) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        self.y = y.tolist()
        c, h = x.shape[1], x.shape[2]
        self.transform = v2.Compose([
            v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.5] * c, [0.25] * c), v2.RandomCrop(h, padding=pad)]
            + ([v2.RandomHorizontalFlip()] if flip else []))

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.y[i]


def seed_worker(worker_id):
    import torch

    torch.set_num_threads(1)


def ours_epochs(x, y, epochs, step, device, kind):
    """The worker's data path (optionally with a model step); returns seconds per epoch."""
    import torch

    from workers.training import Augmenter

    gen = torch.Generator().manual_seed(0)
    augmenter = Augmenter(x, kind)  # once per candidate in train_epochs: pads the set once
    times = []
    while _more(times, epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=gen).to(device)
        for s in range(0, len(x), BATCH):
            idx = order[s:s + BATCH]
            xb = augmenter.batch(idx, gen)  # as train_epochs does
            yb = y.index_select(0, idx)
            if step:
                step(xb, yb)
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def loader_epochs(dataset, epochs, step, device, workers):
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, pin_memory=device.type == "cuda",
                        worker_init_fn=seed_worker if workers else None,
                        generator=torch.Generator().manual_seed(0))
    times = []
    while _more(times, epochs):
        start = time.perf_counter()
        for xb, yb in loader:
            xb = xb.to(device, non_blocking=True)
            yb = torch.as_tensor(yb).to(device, non_blocking=True)
            if step:
                step(xb, yb)
        _sync(device)
        times.append(time.perf_counter() - start)
    del loader
    return times


MIN_SECONDS = 0.3  # 0.15 in --quick


def _more(times: list, epochs: int, cap: int = 500) -> bool:
    """Another epoch? At least ``epochs``, and fast pipelines go on until the timed epochs
    (all but the warm-up) add up to MIN_SECONDS, so their best epoch is not a clock tick."""
    if len(times) < epochs:
        return True
    return sum(times[1:]) < MIN_SECONDS and len(times) < cap


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def tiny_model_step(input_shape, num_classes, device):
    import torch
    from torch import nn

    model = nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(input_shape).prod()), num_classes)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(xb, yb):
        loss = nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def data_sets(quick: bool):
    import torch

    from workers import datasets

    digits = datasets.load("digits", 5, "/nonexistent")  # the worker's own training split
    n = 2000 if quick else 10000
    gen = torch.Generator().manual_seed(0)
    cifar_x = torch.randn(n, 3, 32, 32, generator=gen)
    cifar_y = torch.randint(0, 10, (n,), generator=gen)
    return {  # name: (x, y, the worker's augmentation for it)
        f"digits 1x8x8 (n={len(digits.x_train):,})": (digits.x_train, digits.y_train, "shift"),
        f"synthetic CIFAR-sized 3x32x32 (n={n:,})": (cifar_x, cifar_y, "crop_flip"),
    }


def main():
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the main process")
    args = parser.parse_args()

    import os

    import django
    import torch

    # workers.training imports the services, so Django is set up (no database is opened).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nasweb.settings")
    django.setup()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    info = machine()
    info["device"] = str(device)
    timed_epochs = 2 if args.quick else 3
    global MIN_SECONDS
    MIN_SECONDS = 0.15 if args.quick else 0.3
    rows, results = [], []
    from workers.training import AUGMENTATIONS

    for set_name, (x_cpu, y_cpu, kind) in data_sets(args.quick).items():
        x, y = x_cpu.to(device), y_cpu.to(device)
        pad, flip = AUGMENTATIONS[kind]["pad"], AUGMENTATIONS[kind]["flip"]
        work = f"crop (pad {pad}){' + flip' if flip else ''} per image"
        n = len(x)
        for with_step in (False, True):
            step_of = (lambda: tiny_model_step(tuple(x.shape[1:]), 10, device)) if with_step else (lambda: None)
            variants = [
                (f"ours: workers.training.Augmenter({kind!r}) on {device.type}",
                 lambda: ours_epochs(x, y, 1 + timed_epochs, step_of(), device, kind)),
                ("DataLoader, tensors, 0 workers",
                 lambda: loader_epochs(CroppedTensors(x_cpu, y_cpu, pad, flip), 1 + timed_epochs, step_of(),
                                       device, 0)),
                ("DataLoader, tensors, 2 workers",
                 lambda: loader_epochs(CroppedTensors(x_cpu, y_cpu, pad, flip), 1 + timed_epochs, step_of(),
                                       device, 2)),
            ]
            if not args.quick:  # the slowest baseline; the tensor DataLoader above is the stronger one
                variants.append(("DataLoader, torchvision-style, 0 workers",
                                 lambda: loader_epochs(TorchvisionStyle(x_cpu, y_cpu, pad, flip), 1 + timed_epochs,
                                                       step_of(), device, 0)))
            measured = {}
            for label, run in variants:
                with Timer() as total:
                    times = run()
                measured[label] = {"samples_per_s": n / min(times[1:]), "first_epoch_s": times[0],
                                   "epoch_s": min(times[1:]), "total_s": total.seconds}
            ours = measured[variants[0][0]]["samples_per_s"]
            best_loader = max(v["samples_per_s"] for k, v in measured.items() if k.startswith("DataLoader"))
            what = "data + tiny model step" if with_step else "data path alone"
            for label, m in measured.items():
                rows.append([set_name if label == variants[0][0] else "",
                             f"{what}, {work}" if label == variants[0][0] else "",
                             label, m["samples_per_s"], ours / m["samples_per_s"]])
            results.append({"data_set": set_name, "measure": what, "augmentation": work, "variants": measured,
                            "ours_over_best_dataloader": ours / best_loader,
                            "goal": 10.0 if device.type == "cuda" else 3.0})
    notes = [f"equal work: every pipeline crops (and, for the CIFAR-sized set, flips) each image on its own; "
             f"speed-up = ours (first row of each group) / that row; goal >= "
             f"{'10' if device.type == 'cuda' else '3'}x the DataLoader on {device.type}",
             f"batch {BATCH}, steady state: best of {timed_epochs} epochs after a warm-up epoch; "
             f"device {device}, torch threads {args.threads} (DataLoader workers: 1 each)"]
    summary = ", ".join(f"{r['data_set'].split(' (')[0]} / {r['measure']}: {r['ours_over_best_dataloader']:.1f}x"
                        for r in results)
    notes.append(f"ours over the fastest DataLoader: {summary}")
    warn = busy_warning()
    if warn:
        notes.append(warn)
    print(table("Data pipeline: on-device tensors vs torch.utils.data.DataLoader (samples/s)",
                ["data set", "measure", "pipeline", "samples/s", "speed-up"], rows, notes))
    path = write_results("data_pipeline", rounded({"machine": info, "quick": args.quick, "batch_size": BATCH,
                                                   "rows": results, "notes": notes}, 4), args.json)
    print(f"  wrote {shown(path)}")


if __name__ == "__main__":
    main()
