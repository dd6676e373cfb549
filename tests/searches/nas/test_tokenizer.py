from __future__ import annotations

import json

import torch

from searches.nas.tokenizer import PAD_ID, UNK_ID, Tokenizer

TEXTS = ["The cat sat.", "the dog sat!", "A cat, a dog; the END"]


def test_vocabulary_is_ordered_by_frequency_then_alphabet():
    tok = Tokenizer().fit(TEXTS)
    assert tok.vocab[:2] == ["<pad>", "<unk>"]
    # "the" x3; then "a", "cat", "dog", "sat" x2 in alphabetical order
    assert tok.vocab[2:7] == ["the", "a", "cat", "dog", "sat"]
    assert Tokenizer().fit(list(reversed(TEXTS))).vocab == tok.vocab


def test_max_vocab_and_min_freq_limit_the_vocabulary():
    assert Tokenizer(max_vocab=4).fit(TEXTS).vocab == ["<pad>", "<unk>", "the", "a"]
    assert set(Tokenizer(min_freq=2).fit(TEXTS).vocab[2:]) == {"the", "a", "cat", "dog", "sat"}


def test_unknown_words_get_the_unknown_id():
    tok = Tokenizer().fit(TEXTS)
    ids = tok.encode("the zebra sat")
    assert ids[0] == tok.vocab.index("the") and ids[1] == UNK_ID and ids[2] == tok.vocab.index("sat")


def test_encode_batch_pads_and_truncates_to_a_long_tensor():
    tok = Tokenizer().fit(TEXTS)
    batch = tok.encode_batch(["the cat", "the cat sat the dog sat"], max_len=4)
    assert batch.dtype == torch.long and batch.shape == (2, 4)
    assert batch[0, 2:].tolist() == [PAD_ID, PAD_ID]
    assert PAD_ID not in batch[1].tolist()
    assert tok.encode_batch([], max_len=4).shape == (0, 4)


def test_character_level_and_decode():
    tok = Tokenizer(level="char").fit(["abba", "cab"])
    assert tok.vocab[2:] == ["a", "b", "c"]
    assert tok.decode(tok.encode("cab", max_len=6)) == "cab"
    assert Tokenizer().fit(TEXTS).decode(Tokenizer().fit(TEXTS).encode("The cat sat")) == "the cat sat"


def test_state_is_a_plain_dict_that_survives_json_and_a_weights_only_checkpoint(tmp_path):
    tok = Tokenizer(level="word", max_vocab=50, lowercase=False).fit(TEXTS)
    state = json.loads(json.dumps(tok.to_dict()))
    path = tmp_path / "ckpt.pt"
    torch.save({"tokenizer": tok.to_dict()}, path)
    loaded = torch.load(path, weights_only=True)["tokenizer"]
    for restored in (Tokenizer.from_dict(state), Tokenizer.from_dict(loaded)):
        assert restored.vocab == tok.vocab
        assert restored.encode("The END is near", 6) == tok.encode("The END is near", 6)
