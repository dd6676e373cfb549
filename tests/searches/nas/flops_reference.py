"""The forward-hook MAC counter NASWeb used before FlopCounterMode, kept as the reference
that the library-based count is checked against (tests only)."""
from __future__ import annotations

import torch
from torch import nn

from searches.nas.measure import example_input


def _conv_macs(module, inputs, output):
    per_output = module.in_channels // module.groups
    for k in module.kernel_size:
        per_output *= k
    return output[0].numel() * per_output  # output[0]: one sample


def _linear_macs(module, inputs, output):
    return output[0].numel() * module.in_features


def _rnn_macs(module, inputs, output):
    x = inputs[0]
    # A packed sequence holds exactly the real (unpadded) time steps of the batch.
    if isinstance(x, nn.utils.rnn.PackedSequence):
        steps = x.data.shape[0] / x.batch_sizes[0].item()
    else:
        steps = x.shape[1] if module.batch_first else x.shape[0]
    gates = 3 if isinstance(module, nn.GRU) else 4 if isinstance(module, nn.LSTM) else 1
    directions = 2 if module.bidirectional else 1
    macs, in_size = 0, module.input_size
    for _ in range(module.num_layers):
        macs += directions * gates * (in_size + module.hidden_size) * module.hidden_size
        in_size = module.hidden_size * directions
    return int(steps * macs)


def _attention_macs(module, inputs, output):
    query, key = inputs[0], inputs[1]
    # Sequence lengths; the batch is dimension 0 or 1 depending on batch_first.
    q_len = query.shape[1] if module.batch_first else query.shape[0]
    k_len = key.shape[1] if module.batch_first else key.shape[0]
    e = module.embed_dim
    projections = q_len * e * e + k_len * e * (module.kdim + module.vdim)  # q, k, v
    scores_and_mix = 2 * q_len * k_len * e
    return projections + scores_and_mix + q_len * e * e  # + output projection


# Matched with isinstance, so subclasses of these layers count too.
_MACS = (((nn.Conv1d, nn.Conv2d, nn.Conv3d), _conv_macs), (nn.Linear, _linear_macs),
         (nn.RNNBase, _rnn_macs), (nn.MultiheadAttention, _attention_macs))


def _counter(module):
    return next((count for kind, count in _MACS if isinstance(module, kind)), None)


def hook_macs(model: nn.Module, input_shape) -> int:
    """Estimated multiply-accumulates of one forward pass of one sample (see module docs)."""
    total = 0

    def hook_for(counter):
        def hook(module, inputs, output):
            nonlocal total
            total += int(counter(module, inputs, output))
        return hook

    # The attention module's own output projection is counted by _attention_macs.
    inside_attention = {id(m) for a in model.modules() if isinstance(a, nn.MultiheadAttention)
                        for m in a.modules() if m is not a}
    handles = [m.register_forward_hook(hook_for(_counter(m)))
               for m in model.modules()
               if _counter(m) is not None and id(m) not in inside_attention]
    was_training = model.training
    model.eval()
    try:
        # Grad stays enabled on purpose: under no_grad, eval-mode transformer layers take a
        # fused fast path that never calls their submodules, and the hooks would see nothing.
        with torch.enable_grad():
            device = next(model.parameters(), torch.empty(0)).device
            model(example_input(model, input_shape, 1, device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total
