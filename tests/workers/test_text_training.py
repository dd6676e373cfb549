"""Training on the data sets users bring: a generated text corpus and an uploaded image folder,
end to end through ``workers.training.run_candidate``; and checkpoints that never run pickled code."""
import io
import random
import zipfile

import pytest
import torch
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from searches import services
from searches.models import Candidate, EpochMetric
from searches.nas import build_model
from searches.nas.tokenizer import Tokenizer
from workers import checkpoints, datasets, training

pytestmark = pytest.mark.django_db

TOPICS = {
    "sport": ["goal", "match", "team", "coach", "league", "striker", "referee", "stadium"],
    "food": ["recipe", "oven", "garlic", "pasta", "flavour", "kitchen", "dessert", "spice"],
    "tech": ["laptop", "software", "server", "compiler", "network", "keyboard", "database", "chip"],
}
FILLER = ["the", "a", "was", "really", "today", "about", "and", "we", "they", "very", "new", "old", "this"]


def corpus(n: int = 240, seed: int = 0) -> list[tuple[str, str]]:
    """Sentences of filler words with two or three keywords of their topic mixed in."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = sorted(TOPICS)[i % len(TOPICS)]
        words = rng.choices(FILLER, k=rng.randint(5, 12)) + rng.sample(TOPICS[label], rng.randint(2, 3))
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows), encoding="utf-8")


@pytest.fixture
def data_dir(tmp_path, settings):
    path = tmp_path / "data"
    path.mkdir()
    settings.DATA_DIR = path
    return path


def train_one(search, arch=None):
    cid = services.search_advance(search.id)[0]
    if arch is not None:  # a fixed architecture, so the test does not depend on the strategy's draw
        space = datasets.space_for(search.space, search.space_settings, datasets.load(
            search.dataset, search.seed, str(settings.DATA_DIR)))[0]
        arch = space.validate(arch)
        Candidate.objects.filter(id=cid).update(arch=arch, arch_hash=space.arch_hash(arch))
    assert training.run_candidate(cid, worker="test-worker") == "finished", Candidate.objects.get(id=cid).error
    return Candidate.objects.get(id=cid)


CONV = {"embed_dim": 32, "encoder": "conv", "hidden": 64, "conv_kernels": "3", "gru_layers": 1,
        "gru_bidirectional": False, "tf_heads": 1, "tf_layers": 1, "pooling": "max", "dropout": 0.0}


def test_a_generated_text_corpus_trains_a_text_candidate_well_above_chance(alice, data_dir, checkpoint_dir):
    write_csv(data_dir / "text" / "topics.csv", corpus())
    search = services.search_create(owner=alice, name="text", dataset="text:topics", space="text",
                                    strategy="random", max_candidates=1, epochs=4, seed=7,
                                    train_settings={"batch_size": 16, "lr": 0.01})
    cand = train_one(search, CONV)

    assert cand.test_accuracy >= 0.8  # chance is 1/3
    assert EpochMetric.objects.filter(candidate=cand).count() == 4
    assert cand.param_count > 0 and cand.flops > 0 and cand.latency_ms > 0  # measured on token-id inputs
    assert len(cand.confusion_matrix) == 3

    ckpt = checkpoints.load(cand.checkpoint_path)
    tokenizer = Tokenizer.from_dict(ckpt["tokenizer"])
    assert ckpt["space_settings"]["vocab_size"] == tokenizer.vocab_size < 10000  # sized to the data
    assert ckpt["class_names"] == ["food", "sport", "tech"]
    model = build_model(ckpt["space"], ckpt["space_settings"], ckpt["arch"], ckpt["input_shape"], ckpt["num_classes"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    texts = ["we really liked the garlic pasta recipe", "the striker and the coach of the team",
             "a new compiler for the database server"]
    with torch.no_grad():
        pred = model(tokenizer.encode_batch(texts, ckpt["input_shape"][0])).argmax(dim=1).tolist()
    assert [ckpt["class_names"][p] for p in pred] == ["food", "sport", "tech"]


def test_an_uploaded_text_table_trains_with_a_randomly_drawn_architecture(alice, data_dir, checkpoint_dir):
    rows = corpus(n=90, seed=3)
    jsonl = "\n".join('{"text": "%s", "label": "%s"}' % row for row in rows).encode()
    dataset = services.dataset_upload(owner=alice, name="topics", upload=SimpleUploadedFile("t.jsonl", jsonl))
    search = services.search_create(owner=alice, name="up", dataset=dataset.catalog_name, space="text",
                                    strategy="random", max_candidates=1, epochs=1, seed=11)
    cand = train_one(search)
    assert cand.state == Candidate.State.FINISHED and "tokenizer" in checkpoints.load(cand.checkpoint_path)


def test_the_tokenizer_is_fitted_on_the_training_split_only(data_dir):
    # Every row carries a word of its own: only the training rows' words may be in the vocabulary.
    rows = [(f"word{i} {TOPICS['sport'][i % 8] if i % 2 else TOPICS['food'][i % 8]}", "sport" if i % 2 else "food")
            for i in range(60)]
    write_csv(data_dir / "text" / "own.csv", rows)
    data = datasets.load("text:own", 5, str(data_dir))
    vocab = set(data.tokenizer["vocab"])
    tok = Tokenizer.from_dict(data.tokenizer)
    train_words = {tok.decode(row.tolist()).split()[0] for row in data.x_train}
    held_out = [tok.decode(row.tolist()).split()[0] for row in torch.cat([data.x_val, data.x_test])]
    assert all(w.startswith("word") for w in train_words) and train_words <= vocab
    assert held_out and set(held_out) == {"<unk>"}  # their own words were never seen in training
    assert data.x_train.dtype == torch.long and data.x_train.shape == (42, data.input_shape[0])
    assert data.mean == [] and data.std == []
    again = datasets.load("text:own", 5, str(data_dir))
    other = datasets.load("text:own", 6, str(data_dir))
    assert torch.equal(data.x_val, again.x_val) and not torch.equal(data.y_train, other.y_train)


def test_augmentation_leaves_token_ids_alone():
    ids = torch.randint(0, 50, (4, 16))
    out = training.augment_batch(ids, "shift", torch.Generator().manual_seed(0))
    assert torch.equal(out, ids)


def png(color, size=(10, 10), mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_an_uploaded_image_folder_of_generated_pngs_trains_a_candidate(alice, data_dir, checkpoint_dir, settings):
    settings.IMAGE_FOLDER_SIDE = 12
    rng = random.Random(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(24):  # reddish squares and bluish squares, of two sizes and modes
            jitter = rng.randint(-30, 30)
            zf.writestr(f"shapes/red/{i}.png", png((200 + jitter // 2, 40, 40), size=(10 + i % 3, 10)))
            zf.writestr(f"shapes/blue/{i}.png", png((40, 40, 200 + jitter // 2), size=(10, 12)))
    dataset = services.dataset_upload(owner=alice, name="squares", upload=SimpleUploadedFile("s.zip", buf.getvalue()))
    assert dataset.class_names == ["blue", "red"] and dataset.num_examples == 48
    search = services.search_create(owner=alice, name="img", dataset=dataset.catalog_name, space="chain",
                                    strategy="random", max_candidates=1, epochs=3, seed=2,
                                    train_settings={"batch_size": 8, "lr": 0.01})
    cand = train_one(search)
    assert cand.test_accuracy >= 0.8  # two colours: chance is 1/2
    ckpt = checkpoints.load(cand.checkpoint_path)
    assert ckpt["input_shape"] == [3, 12, 12] and ckpt["class_names"] == ["blue", "red"]
    assert "tokenizer" not in ckpt


def test_an_image_folder_on_disk_loads_as_grey_tensors(data_dir):
    for c, shade in (("dark", 30), ("light", 220)):
        (data_dir / "images" / "tones" / c).mkdir(parents=True)
        for i in range(8):
            (data_dir / "images" / "tones" / c / f"{i}.png").write_bytes(png(shade + i, mode="L"))
    data = datasets.load("folder:tones", 1, str(data_dir), resolution=8)
    assert data.input_shape == (1, 8, 8) and data.class_names == ["dark", "light"]
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 16


class _Marker:
    """Pickles to a call of ``open(path, "w")``: loading it unrestricted creates the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_pickle_checkpoint_is_refused_without_running_its_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Marker(marker)}, path)

    with pytest.raises(Exception) as refused:
        checkpoints.load(path)
    assert "weights_only" in str(refused.value) or "Unsupported global" in str(refused.value)
    assert not marker.exists()
    # The file really is malicious: an unrestricted load would have run it.
    torch.load(path, weights_only=False)
    assert marker.exists()
