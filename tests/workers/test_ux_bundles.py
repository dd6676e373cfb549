"""The bundle's int8 variant and examples (issue 18, items 12 and 13): conv nets get torch's
static int8 quantisation calibrated on training inputs, with sizes, accuracies and the layers
left in float reported; text models' examples carry their sentences, shown by predict.py."""
import json
import random
import zipfile

import torch

from searches.nas import get_space
from tests.workers.test_bundles import run_isolated
from workers import bundles, datasets


def ckpt_of(space_name, arch, model, data, **extra):
    return {"format_version": 1, "state_dict": model.state_dict(), "space": space_name, "space_settings": {},
            "arch": arch, "input_shape": list(data.input_shape), "num_classes": data.num_classes,
            "class_names": data.class_names, "normalisation": {"mean": data.mean, "std": data.std},
            "metrics": {}, **extra}


def test_ux_a_conv_net_gets_static_int8_calibrated_on_training_data_smaller_than_float(tmp_path):
    data = datasets.load("digits", 1, "/nonexistent")
    space = get_space("cell")
    arch = space.sample(random.Random(1))
    torch.manual_seed(0)
    model = space.build(arch, data.input_shape, data.num_classes)
    test = bundles.TestSplit(x=data.x_test, y=data.y_test, calibration=data.x_train[:256])
    result = bundles.make_bundle(ckpt_of("cell", arch, model, data), tmp_path / "b.zip", test=test,
                                 info={"genotype": space.genotype(arch)})
    int8 = result.details["int8"]
    assert int8["kind"] == "static" and "calibrated on 256 training inputs" in int8["method"]
    assert result.int8_size < result.float_size
    assert result.int8_accuracy is not None and result.float_accuracy is not None
    assert abs(result.int8_accuracy - result.float_accuracy) < 0.1
    assert isinstance(int8["float_layers"], list) and 0 < int8["quantised_fraction"] <= 1
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        meta = json.loads(zf.read("b/metadata.json"))
        readme = zf.read("b/README.md").decode()
    assert meta["int8"]["method"].startswith("static") and meta["int8"]["float_layers"] == int8["float_layers"]
    assert "int8 quantised TorchScript: static" in readme


def test_ux_the_layers_that_stay_float_are_named():
    data = datasets.load("digits", 1, "/nonexistent")
    space = get_space("chain")
    arch = dict(space.sample(random.Random(1)), activation="silu")
    model = space.build(arch, data.input_shape, data.num_classes).eval()
    _, how, _, float_layers = bundles.quantise_static_int8(model, data.x_train[:64], data.x_test[:2])
    assert any("SiLU" in name for name in float_layers)  # no int8 SiLU kernel: it runs in float
    relu = dict(arch, activation="relu")
    _, _, _, none_left = bundles.quantise_static_int8(space.build(relu, data.input_shape, 10).eval(),
                                                      data.x_train[:64], data.x_test[:2])
    assert not any("ReLU" in name for name in none_left)


def test_ux_without_training_inputs_a_conv_net_falls_back_to_dynamic_and_says_why(tmp_path):
    data = datasets.load("digits", 1, "/nonexistent")
    space = get_space("chain")
    arch = space.sample(random.Random(2))
    model = space.build(arch, data.input_shape, data.num_classes)
    result = bundles.make_bundle(ckpt_of("chain", arch, model, data), tmp_path / "b.zip",
                                 test=bundles.TestSplit(x=data.x_test, y=data.y_test), info={})
    assert result.details["int8"]["kind"] == "dynamic"
    assert "no training inputs" in result.details["int8"]["why_not_static"]


def test_ux_text_examples_hold_their_sentences_and_predict_py_shows_them(tmp_path):
    vocab = ["<pad>", "<unk>", "a", "good", "bad", "movie", "plot"]
    tokenizer = {"level": "word", "max_vocab": 100, "min_freq": 1, "lowercase": True, "vocab": vocab}
    space = get_space("text", {"vocab_size": len(vocab)})
    arch = space.sample(random.Random(0))
    model = space.build(arch, (6,), 2)
    x = torch.tensor([[2, 3, 5, 0, 0, 0], [2, 4, 6, 1, 0, 0]])
    data = datasets.DataSplits(x_train=x, y_train=torch.tensor([1, 0]), x_val=x, y_val=torch.tensor([1, 0]),
                               x_test=x, y_test=torch.tensor([1, 0]), class_names=["neg", "pos"], mean=[], std=[],
                               tokenizer=tokenizer)
    ckpt = ckpt_of("text", arch, model, data, tokenizer=tokenizer)
    ckpt["space_settings"] = {"vocab_size": len(vocab)}
    bundles.make_bundle(ckpt, tmp_path / "b.zip", test=bundles.TestSplit(x=x, y=torch.tensor([1, 0])), info={})
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        zf.extractall(tmp_path)
    examples = torch.load(tmp_path / "b" / "example_input.pt", weights_only=True)
    assert examples["texts"] == ["a good movie", "a bad plot <unk>"]
    [out] = run_isolated(tmp_path / "b", [["predict.py", "--torchscript"]])
    assert "input 0 'a good movie':" in out and "input 1 'a bad plot <unk>':" in out
