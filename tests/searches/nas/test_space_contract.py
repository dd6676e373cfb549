"""The search-space contract, checked on every space in SPACES with its default settings."""
from __future__ import annotations

import json
import random

import pytest
import torch

from searches.nas.registry import SPACES, get_space
from searches.nas.space import InvalidArchitecture

SAMPLES = 30
NUM_CLASSES = 3


def tiny_batch(space, batch=2):
    """``(input_shape, inputs)`` small enough for a quick forward pass."""
    if space.modality == "text":
        return (12,), torch.randint(0, 50, (batch, 12))
    return (1, 8, 8), torch.randn(batch, 1, 8, 8)


@pytest.fixture(params=sorted(SPACES))
def space(request):
    return get_space(request.param)


@pytest.fixture
def archs(space):
    rng = random.Random(1234)
    return [space.sample(rng) for _ in range(SAMPLES)]


def test_samples_are_valid_and_canonical(space, archs):
    for arch in archs:
        assert space.validate(arch) == arch
        assert space.canonical(space.canonical(arch)) == space.canonical(arch)


def test_sampling_is_seeded(space):
    first = [space.sample(random.Random(7)) for _ in range(3)]
    again = [space.sample(random.Random(7)) for _ in range(3)]
    assert first == again


def test_hash_is_stable_across_key_order_and_json(space, archs):
    for arch in archs:
        h = space.arch_hash(arch)
        assert len(h) == 32 and int(h, 16) >= 0
        assert space.arch_hash(dict(arch)) == h
        assert space.arch_hash(dict(reversed(list(arch.items())))) == h
        assert space.arch_hash(json.loads(json.dumps(arch))) == h


def test_hash_equal_exactly_when_canonical_forms_equal(space, archs):
    for arch in archs[:10]:
        h = space.arch_hash(arch)
        for d in space.decisions:
            for choice in d.choices:
                variant = {**arch, d.name: choice}
                if not space.is_valid(variant):
                    continue
                same = space.canonical(variant) == space.canonical(arch)
                assert (space.arch_hash(variant) == h) == same


def test_sample_covers_many_distinct_architectures(space, archs):
    assert len({space.arch_hash(a) for a in archs}) > SAMPLES // 2


def test_genotype_is_a_readable_string(space, archs):
    for arch in archs:
        text = space.genotype(arch)
        assert isinstance(text, str) and text.strip()
    assert len({space.genotype(a) for a in archs}) == len({space.arch_hash(a) for a in archs})


def test_encode_decode_round_trip(space, archs):
    for arch in archs:
        codes = space.encode(arch)
        assert all(isinstance(c, int) and 0 <= c < len(d.choices)
                   for c, d in zip(codes, space.decisions))
        assert space.decode(codes) == arch


def test_mutate_gives_a_different_valid_architecture(space, archs):
    rng = random.Random(5)
    for arch in archs:
        child = space.mutate(arch, rng)
        assert space.is_valid(child)
        assert space.arch_hash(child) != space.arch_hash(arch)


def test_crossover_gives_a_valid_architecture(space, archs):
    rng = random.Random(6)
    for a, b in zip(archs, archs[1:]):
        child = space.crossover(a, b, rng)
        assert space.is_valid(child)


def test_built_network_gives_one_row_of_logits_per_sample(space, archs):
    input_shape, x = tiny_batch(space)
    for arch in archs:
        model = space.build(arch, input_shape, NUM_CLASSES)
        out = model(x)
        assert out.shape == (2, NUM_CLASSES)
        assert torch.isfinite(out).all()


def test_wrong_choice_is_refused(space, archs):
    for d in space.decisions:
        with pytest.raises(InvalidArchitecture):
            space.validate({**archs[0], d.name: "no-such-choice"})
        with pytest.raises(InvalidArchitecture):
            space.build({**archs[0], d.name: "no-such-choice"}, *tiny_batch(space)[:1], NUM_CLASSES)


def test_unknown_or_missing_key_is_refused(space, archs):
    with pytest.raises(InvalidArchitecture):
        space.validate({**archs[0], "no_such_decision": 1})
    missing = dict(archs[0])
    missing.pop(space.decisions[-1].name)
    with pytest.raises(InvalidArchitecture):
        space.validate(missing)
    with pytest.raises(InvalidArchitecture):
        space.validate([archs[0]])


def test_settings_recreate_the_space_through_json(space):
    settings = json.loads(json.dumps(space.settings()))
    again = type(space)(**settings)
    assert again.decisions == space.decisions
    assert again.settings() == space.settings()
