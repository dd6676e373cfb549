from __future__ import annotations

import random

from torch import nn

from searches.nas.measure import count_flops, count_params, measure_latency_ms
from searches.nas.text import TextSpace


def test_count_params_counts_weights_and_biases():
    model = nn.Sequential(nn.Linear(10, 5), nn.Linear(5, 2, bias=False))
    assert count_params(model) == 10 * 5 + 5 + 5 * 2
    model[1].weight.requires_grad_(False)
    assert count_params(model, trainable_only=True) == 55


def test_flops_of_convolutions_and_linear_layers():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    conv = 8 * 4 * 4 * 3 * 9
    depthwise = 8 * 4 * 4 * 1 * 9
    linear = 8 * 4 * 4 * 10
    assert count_flops(model, (3, 4, 4)) == conv + depthwise + linear


class SequenceModel(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        out = self.layer(x)
        return out[0] if isinstance(out, tuple) else out


def test_flops_of_recurrent_and_attention_layers():
    gru = SequenceModel(nn.GRU(4, 8, batch_first=True))
    assert count_flops(gru, (5, 4)) == 5 * 3 * (4 + 8) * 8

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x)[0]

    # q, k, v and output projections, plus scores and the weighted sum of values
    assert count_flops(SelfAttention(), (6, 16)) == 4 * 6 * 16 * 16 + 2 * 6 * 6 * 16


def test_flops_of_text_networks_see_inside_the_transformer():
    space = TextSpace(vocab_size=50, embed_dims=(16,), hidden_sizes=(32,))
    arch = space.validate({**space.sample(random.Random(0)), "encoder": "transformer", "tf_layers": 1,
                           "tf_heads": 2})
    model = space.build(arch, (10,), 3)
    model.train()
    flops = count_flops(model, (10,))
    attention = 4 * 10 * 16 * 16 + 2 * 10 * 10 * 16
    feed_forward = 2 * 10 * 16 * 32
    assert flops == attention + feed_forward + 16 * 3
    assert model.training  # the caller's mode is kept


def test_latency_is_a_positive_median_and_keeps_the_mode():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    model.train()
    latency = measure_latency_ms(model, (1, 8, 8), device="cpu", repeats=5)
    assert isinstance(latency, float) and latency > 0
    assert model.training
    assert model[1].num_batches_tracked.item() == 0  # ran in eval mode: no BatchNorm updates


def test_flopcountermode_counts_what_the_hooks_counted_for_every_space():
    from searches.nas import get_space

    from flops_reference import hook_macs  # tests/searches/nas, on the path like factories

    checked = 0
    for name, shape in (("chain", (3, 32, 32)), ("cell", (3, 32, 32)), ("mobile", (3, 32, 32)), ("text", (10,))):
        space = TextSpace(vocab_size=50) if name == "text" else get_space(name)
        rng = random.Random(1)
        for _ in range(8):
            model = space.build(space.sample(rng), shape, 10)
            assert count_flops(model, shape) == hook_macs(model, shape), (name, model)
            checked += 1
    for encoder in ("gru", "transformer"):  # the text space's recurrent and attention encoders
        model = space.build(space.validate({**space.sample(random.Random(0)), "encoder": encoder}), (10,), 3)
        assert count_flops(model, (10,)) == hook_macs(model, (10,)) > 0
    lstm = SequenceModel(nn.LSTM(4, 8, batch_first=True, num_layers=2, bidirectional=True))  # a fused CPU kernel
    assert count_flops(lstm, (5, 4)) == hook_macs(lstm, (5, 4)) == 11520
    assert checked == 32
