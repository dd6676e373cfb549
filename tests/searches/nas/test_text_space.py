from __future__ import annotations

import random
import warnings

import pytest
import torch

from searches.nas.space import InvalidArchitecture
from searches.nas.text import ENCODERS, TextSpace
from searches.nas.tokenizer import PAD_ID

SEQ_LEN = 12


def arch_with(space, **decisions):
    base = space.sample(random.Random(0))
    return space.validate({**base, "dropout": 0.0, **decisions})


def each_encoder(space):
    return [
        arch_with(space, encoder="conv", conv_kernels="3-5-7", pooling="max"),
        arch_with(space, encoder="gru", gru_bidirectional=True, gru_layers=2, pooling="mean"),
        arch_with(space, encoder="transformer", embed_dim=32, tf_heads=4, tf_layers=2, pooling="mean"),
    ]


@pytest.fixture
def space():
    return TextSpace(vocab_size=100, embed_dims=(16, 32), hidden_sizes=(16,))


def test_each_encoder_builds_and_trains(space):
    ids = torch.randint(2, 100, (3, SEQ_LEN))
    for arch in each_encoder(space):
        model = space.build(arch, (SEQ_LEN,), 4)
        out = model(ids)
        assert out.shape == (3, 4)
        out.sum().backward()
        assert model.embed.weight.grad is not None


def test_decisions_of_other_encoders_are_pinned(space):
    conv = arch_with(space, encoder="conv")
    assert space.arch_hash({**conv, "tf_heads": 2}) == space.arch_hash({**conv, "tf_heads": 4})
    assert space.arch_hash({**conv, "gru_layers": 2}) == space.arch_hash(conv | {"gru_layers": 1})
    assert space.arch_hash({**conv, "conv_kernels": "3"}) != space.arch_hash({**conv, "conv_kernels": "3-5"})
    tf = arch_with(space, encoder="transformer")
    assert space.arch_hash({**tf, "tf_heads": 2}) != space.arch_hash({**tf, "tf_heads": 4})
    assert space.arch_hash({**tf, "conv_kernels": "3"}) == space.arch_hash({**tf, "conv_kernels": "3-5"})


def test_padding_does_not_change_the_prediction(space):
    tokens = torch.tensor([[5, 17, 42, 8, 9]])
    padded = torch.full((1, SEQ_LEN), PAD_ID)
    padded[0, :5] = tokens
    for arch in each_encoder(space):
        model = space.build(arch, (SEQ_LEN,), 4).eval()
        with torch.no_grad():
            assert torch.allclose(model(tokens), model(padded), atol=1e-5), arch["encoder"]


def test_all_padding_rows_and_unknown_ids_give_finite_logits(space):
    ids = torch.zeros(2, SEQ_LEN, dtype=torch.long)
    big = torch.full((2, SEQ_LEN), 10**6)
    unk = torch.ones(2, SEQ_LEN, dtype=torch.long)
    for arch in each_encoder(space):
        model = space.build(arch, (SEQ_LEN,), 4).eval()
        with torch.no_grad():
            assert torch.isfinite(model(ids)).all()
            # Ids past the model's vocabulary read as the unknown-word id.
            assert torch.equal(model(big), model(unk))


def test_heads_must_divide_the_embedding():
    space = TextSpace(embed_dims=(6,))
    arch = arch_with(space, encoder="transformer", tf_heads=2)
    with pytest.raises(InvalidArchitecture):
        space.validate({**arch, "tf_heads": 4})
    # Heads do not matter for a conv encoder, so the same numbers are fine there.
    space.validate({**arch, "encoder": "conv", "tf_heads": 4})


def test_input_shape_must_be_a_sequence_length(space):
    with pytest.raises(ValueError):
        space.build(arch_with(space, encoder="conv"), (1, 8, 8), 3)


def test_every_encoder_is_in_the_space(space):
    assert {d.name: d.choices for d in space.decisions}["encoder"] == ENCODERS


def test_text_networks_export_to_torchscript(space):
    ids = torch.randint(0, 100, (2, SEQ_LEN))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still works
        for arch in each_encoder(space):
            model = space.build(arch, (SEQ_LEN,), 3).eval()
            assert torch.allclose(torch.jit.script(model)(ids), model(ids), atol=1e-5)
