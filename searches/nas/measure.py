"""Cost of a network: parameters, multiply-accumulates and latency.

``count_flops`` is an estimate: the multiply-accumulates (MACs) of one sample's
forward pass as ``torch.utils.flop_counter.FlopCounterMode`` counts them, that is
the matrix products, convolutions and attention, wherever they happen (recurrent
layers are matrix products too). Norms, activations, pooling and additions are
left out.
"""
from __future__ import annotations

import copy
import math
import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def example_input(model: nn.Module, input_shape, batch: int = 1, device=None) -> torch.Tensor:
    """A dummy batch for ``model``: floats for images, token ids for text networks.

    A network that eats token ids says so with ``input_dtype = torch.long``.
    """
    shape = (batch, *input_shape)
    if getattr(model, "input_dtype", torch.float32) == torch.long:
        return torch.ones(shape, dtype=torch.long, device=device)  # 1 = UNK: a real, non-pad token
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _mkldnn_rnn_layer_flop(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    # One layer, one direction: every time step of every sequence multiplies the input by
    # the input weights and the hidden state by the hidden weights (all gates at once).
    tokens = math.prod(input_shape[:-1])
    return 2 * tokens * (math.prod(w_ih_shape) + math.prod(w_hh_shape))


# Fused CPU kernels the library's counter has no formula for (it counts their CUDA
# counterparts, and the matrix products an unfused layer is made of).
_EXTRA_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
    torch.ops.aten.mkldnn_rnn_layer: _mkldnn_rnn_layer_flop,
}


def count_flops(model: nn.Module, input_shape) -> int:
    """Estimated multiply-accumulates of one forward pass of one sample (see module docs)."""
    device = next(model.parameters(), torch.empty(0)).device
    if device.type != "cpu":  # cuDNN's fused recurrent kernel has no formula: count the CPU way
        model = copy.deepcopy(model).cpu()
        device = torch.device("cpu")
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
    try:
        # Grad stays enabled on purpose: under no_grad, eval-mode transformer layers take a
        # fused fast path that no formula covers.
        with torch.enable_grad(), counter:
            model(example_input(model, input_shape, 1, device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2  # the counter counts a multiply-accumulate as 2


def measure_latency(model: nn.Module, input_shape, device="cpu", runs: int = 7, warmup_ms: float = 50.0,
                    run_ms: float = 20.0, min_warmup: int = 3, max_warmup: int = 200) -> dict:
    """Batch-1 forward latency on ``device``: warm up (at least ``min_warmup`` passes and
    ``warmup_ms``), then ``runs`` timed runs of as many passes as fill about ``run_ms`` each.
    Returns the median of the runs' per-pass times and their spread (min, quartiles, max), in ms.

    The model is returned to its original device and train/eval mode afterwards.
    """
    device = torch.device(device)
    original = next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.to(device).eval()
    x = example_input(model, input_shape, 1, device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # kernels are asynchronous; time their end

    times = []
    try:
        with torch.no_grad():
            warm, began = 0, time.perf_counter()
            while warm < min_warmup or ((time.perf_counter() - began) * 1000 < warmup_ms and warm < max_warmup):
                start = time.perf_counter()
                model(x)
                sync()
                one = (time.perf_counter() - start) * 1000.0
                warm += 1
            passes = max(1, min(100, int(run_ms / max(one, 1e-3))))
            for _ in range(max(1, runs)):
                start = time.perf_counter()
                for _ in range(passes):
                    model(x)
                sync()
                times.append((time.perf_counter() - start) * 1000.0 / passes)
    finally:
        model.to(original).train(was_training)
    quartiles = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [times[0]] * 3
    return {"median_ms": statistics.median(times), "min_ms": min(times), "p25_ms": quartiles[0],
            "p75_ms": quartiles[2], "max_ms": max(times), "runs": len(times), "passes_per_run": passes,
            "warmup_passes": warm, "device": str(device)}


def measure_latency_ms(model: nn.Module, input_shape, device="cpu", repeats: int = 7, warmup: int = 3) -> float:
    """The median of ``measure_latency`` (``repeats`` timed runs after at least ``warmup`` passes)."""
    return measure_latency(model, input_shape, device=device, runs=repeats, min_warmup=warmup)["median_ms"]
