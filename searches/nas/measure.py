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


def measure_latency_ms(model: nn.Module, input_shape, device="cpu", repeats: int = 20,
                       warmup: int = 3) -> float:
    """Median wall time in ms of a batch-1 forward pass on ``device``, after ``warmup`` passes.

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
            for _ in range(warmup):
                model(x)
            sync()
            for _ in range(max(1, repeats)):
                start = time.perf_counter()
                model(x)
                sync()
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        model.to(original).train(was_training)
    return statistics.median(times)
