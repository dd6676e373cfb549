"""The worker's on-device augmentation works per image: every image of a batch gets its
own crop offset (and flip), each output is a window of that image padded with zeros."""
import torch
import torch.nn.functional as F

from workers import training


def windows(image: torch.Tensor, pad: int, flip: bool) -> list[torch.Tensor]:
    """Every output the augmentation may give for one (C, H, W) image."""
    _, h, w = image.shape
    padded = F.pad(image, (pad, pad, pad, pad))
    out = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            if flip:  # flipped, then cropped: the window of the flipped padded image
                out.append(padded.flip(-1)[:, dy:dy + h, dx:dx + w])
            out.append(padded[:, dy:dy + h, dx:dx + w])
    return out


def batch(n=64, c=3, h=8, w=8):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(1))


def test_each_image_is_a_window_of_itself_and_images_differ_in_their_offsets():
    for kind, spec in training.AUGMENTATIONS.items():
        x = batch()
        out = training.augment_batch(x, kind, torch.Generator().manual_seed(0))
        assert out.shape == x.shape
        picks = []
        for i in range(len(x)):
            options = windows(x[i], spec["pad"], spec["flip"])
            match = [k for k, o in enumerate(options) if torch.equal(o, out[i])]
            assert match, f"{kind}: image {i} is not a crop{' or flip' if spec['flip'] else ''} of itself"
            picks.append(match[0])
        # Per image, not per batch: 64 images draw many different windows.
        assert len(set(picks)) > (2 * spec["pad"] + 1) ** 2 // 2, (kind, sorted(set(picks)))


def test_crop_flip_flips_some_images_and_not_others():
    x = batch()
    out = training.augment_batch(x, "crop_flip", torch.Generator().manual_seed(0))
    pad = training.AUGMENTATIONS["crop_flip"]["pad"]
    flipped = [any(torch.equal(o, out[i]) for o in windows(x[i].flip(-1), pad, False)) for i in range(len(x))]
    assert 0 < sum(flipped) < len(x)


def test_shift_never_mirrors():
    x = batch()
    out = training.augment_batch(x, "shift", torch.Generator().manual_seed(0))
    for i in range(len(x)):
        assert any(torch.equal(o, out[i]) for o in windows(x[i], 1, False))


def test_same_seed_same_batch_and_other_inputs_untouched():
    x = batch()
    a = training.augment_batch(x, "crop_flip", torch.Generator().manual_seed(5))
    b = training.augment_batch(x, "crop_flip", torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert training.augment_batch(x, "none", torch.Generator()) is x
    ids = torch.randint(0, 50, (4, 12))
    assert training.augment_batch(ids, "crop_flip", torch.Generator()) is ids
