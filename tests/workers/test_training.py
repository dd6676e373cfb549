import struct

import numpy as np
import pytest
import torch

from searches import services
from searches.models import Candidate, EpochMetric
from searches.nas import build_model
from workers import checkpoints, datasets, training

pytestmark = pytest.mark.django_db


def make_search(owner, **overrides):
    kwargs = dict(owner=owner, name="t", dataset="digits", space="chain", strategy="random",
                  max_candidates=2, epochs=2, parallel=1, seed=3)
    kwargs.update(overrides)
    return services.search_create(**kwargs)


def test_run_candidate_trains_records_epochs_and_writes_a_loadable_checkpoint(alice, checkpoint_dir):
    search = make_search(alice, epochs=3)
    cid = services.search_advance(search.id)[0]

    assert training.run_candidate(cid, worker="test-worker") == "finished"

    cand = Candidate.objects.get(id=cid)
    assert cand.state == Candidate.State.FINISHED
    assert list(EpochMetric.objects.filter(candidate=cand).order_by("epoch").values_list("epoch", flat=True)) == [1, 2, 3]
    assert cand.param_count > 0 and cand.epochs_done == 3
    assert 0.0 <= cand.test_accuracy <= 1.0 and cand.test_macro_f1 is not None
    assert len(cand.confusion_matrix) == 10 and sum(map(sum, cand.confusion_matrix)) > 0
    ckpt = torch.load(cand.checkpoint_path, weights_only=True)
    assert checkpoints.sha256_of(cand.checkpoint_path) == cand.checkpoint_sha256
    model = build_model(ckpt["space"], ckpt["space_settings"], ckpt["arch"], ckpt["input_shape"], ckpt["num_classes"])
    model.load_state_dict(ckpt["state_dict"])
    data = datasets.load("digits", search.seed, "unused")
    _, accuracy, _ = training.evaluate(model, data.x_test, data.y_test)
    assert accuracy == pytest.approx(cand.test_accuracy, abs=1e-6)


def test_a_candidate_that_raises_fails_alone_with_its_traceback(alice, checkpoint_dir, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "empty"
    search = make_search(alice, dataset="digits")
    cid = services.search_advance(search.id)[0]
    # The data set disappears between form and training: torchvision refuses to load it.
    type(search).objects.filter(id=search.id).update(dataset="mnist")

    assert training.run_candidate(cid, worker="w") == "failed"

    cand = Candidate.objects.get(id=cid)
    assert cand.state == Candidate.State.FAILED
    assert "Traceback" in cand.error and "Dataset not found" in cand.error
    assert not cand.checkpoint_path


def test_a_cancelled_search_stops_its_candidate_at_the_epoch_boundary(alice, checkpoint_dir):
    search = make_search(alice, epochs=5)
    cid = services.search_advance(search.id)[0]
    services.search_cancel(search)
    assert training.run_candidate(cid, worker="w") == "skipped"  # queued ones are cancelled outright
    assert Candidate.objects.get(id=cid).state == Candidate.State.CANCELLED


def test_splits_are_fixed_by_the_seed_and_disjoint():
    a = datasets.load("digits", 5, "unused")
    b = datasets.load("digits", 5, "unused")
    c = datasets.load("digits", 6, "unused")
    assert torch.equal(a.x_val, b.x_val)
    assert not torch.equal(a.x_val, c.x_val)
    assert len(a.x_train) + len(a.x_val) + len(a.x_test) == 1797
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10


def test_a_set_is_moved_to_the_device_once_while_candidates_keep_using_it():
    # "meta" makes new tensors on every .to(), as a GPU would (on the CPU .to() is a no-op).
    digits = datasets.load("digits", 5, "unused")
    first = datasets.on_device(digits, "meta")
    again = datasets.on_device(datasets.load("digits", 5, "unused"), "meta")  # the next candidate
    assert again.x_train is first.x_train and again.y_test is first.y_test
    assert first.x_train.device.type == "meta" and first.x_train.shape == digits.x_train.shape

    datasets.on_device(datasets.load("digits", 6, "unused"), "meta")  # another search's set
    assert datasets.on_device(digits, "meta").x_train is not first.x_train  # only the last stays there


def test_a_caller_that_cuts_its_splits_leaves_the_kept_copy_whole():
    digits = datasets.load("digits", 5, "unused")
    mine = datasets.on_device(digits, "meta")
    mine.x_train = mine.x_train[:10]  # e.g. a proxy's subset
    assert len(datasets.on_device(digits, "meta").x_train) == len(digits.x_train)


def test_a_resized_set_is_the_same_object_for_every_candidate():
    a = datasets.load("digits", 5, "unused", resolution=16)
    assert datasets.load("digits", 5, "unused", resolution=16) is a and a.input_shape == (1, 16, 16)
    assert datasets.on_device(a, "meta").x_train is datasets.on_device(a, "meta").x_train


def test_synthetic_data_is_learnable_shaped_and_deterministic():
    a = datasets.load("synthetic", 1, "unused")
    b = datasets.load("synthetic", 1, "unused")
    assert torch.equal(a.x_train, b.x_train)
    assert a.input_shape == (1, 16, 16) and a.num_classes == 10


def _write_idx(path, array, magic):
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_files_under_data_dir_load_through_torchvision(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    _write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 255, (60, 28, 28)), 0x00000803)
    _write_idx(raw / "train-labels-idx1-ubyte", np.arange(60) % 10, 0x00000801)
    _write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 255, (20, 28, 28)), 0x00000803)
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(20) % 10, 0x00000801)

    from searches.datasets_catalog import DATASETS
    assert DATASETS["mnist"].availability(tmp_path) == (True, "")
    data = datasets.load("mnist", 0, str(tmp_path))
    assert data.input_shape == (1, 28, 28)
    assert len(data.x_train) + len(data.x_val) == 60 and len(data.x_test) == 20
    assert data.class_names[0].startswith("0")


def test_missing_torchvision_files_are_reported_with_what_to_copy(tmp_path):
    from searches.datasets_catalog import DATASETS
    ok, reason = DATASETS["cifar10"].availability(tmp_path)
    assert not ok and "cifar-10-batches-py/data_batch_1" in reason and "never downloads" in reason


def test_classification_metrics_match_a_hand_count():
    pred = torch.tensor([0, 1, 1, 2, 2, 2])
    target = torch.tensor([0, 1, 2, 2, 2, 0])
    m = training.classification_metrics(pred, target, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 0, 1], [0, 1, 0], [0, 1, 2]]
    # recall per class: 1/2, 1/1, 2/3; precision: 1/1, 1/2, 2/3
    assert m["macro_recall"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    f1 = [2 * 1 * 0.5 / 1.5, 2 * 0.5 * 1 / 1.5, 2 / 3]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)


def test_checkpoint_writes_are_atomic_when_saving_fails(tmp_path):
    target = tmp_path / "c.pt"
    with pytest.raises(Exception):
        # The tensor is written first, then pickling the lambda fails half-way through.
        checkpoints.write_atomically(target, {"weights": torch.zeros(1000), "bad": lambda: None})
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_deterministic_search_gives_the_same_numbers_for_the_same_seed(alice, checkpoint_dir):
    """Two searches with the same seed, in deterministic mode, train their first candidate to
    identical per-epoch accuracies and losses (initial weights, data order and augmentation
    follow the seed; another process's torch calls in between change nothing)."""
    curves = []
    for _ in range(2):
        search = make_search(alice, seed=11, train_settings={"deterministic": True})
        cid = services.search_advance(search.id)[0]
        torch.rand(7)  # moves the global generator, as other work in the worker process would
        assert training.run_candidate(cid, worker="w") == "finished"
        curves.append(list(EpochMetric.objects.filter(candidate_id=cid).order_by("epoch")
                           .values_list("val_accuracy", "train_loss")))
    assert curves[0] == curves[1]
    assert torch.are_deterministic_algorithms_enabled()
    training.deterministic_algorithms(False)
