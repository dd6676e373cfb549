"""Text classification space: embedding -> encoder -> pooling -> linear.

The network eats a ``(batch, seq_len)`` LongTensor of token ids made by
``tokenizer.Tokenizer`` (``PAD_ID`` pads, ``UNK_ID`` for unknown words). The
encoder is one of

* ``conv``: parallel 1-D convolutions with the chosen kernel sizes (TextCNN),
* ``gru``: a GRU, optionally bidirectional, over the unpadded tokens,
* ``transformer``: a small transformer encoder with learned positions.

Pooling over time ignores the padding. Decisions that belong to an encoder
that was not chosen are pinned by ``canonical``, so e.g. two conv
architectures that differ only in ``tf_heads`` are one architecture.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .space import Decision, InvalidArchitecture, SearchSpace
from .tokenizer import PAD_ID, UNK_ID

ENCODERS = ("conv", "gru", "transformer")
# Which decisions each encoder reads; the rest of these are pinned when it is chosen.
ENCODER_DECISIONS = {
    "conv": ("conv_kernels",),
    "gru": ("gru_layers", "gru_bidirectional"),
    "transformer": ("tf_heads", "tf_layers"),
}


def conv_kernel_sizes(choice: str) -> list[int]:
    """``"3-5"`` -> ``[3, 5]`` (choices are strings so they survive JSON as they are)."""
    return [int(k) for k in choice.split("-")]


class ConvEncoder(nn.Module):
    def __init__(self, embed_dim, hidden, kernels):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, hidden, k, padding=k // 2) for k in kernels)
        self.out_dim = hidden * len(kernels)

    def forward(self, x, mask):
        x = x.transpose(1, 2)  # (batch, embed, time) for Conv1d
        length = x.shape[-1]
        # Odd kernels keep the length; trimming makes even ones safe too.
        out = torch.cat([torch.relu(conv(x))[..., :length] for conv in self.convs], dim=1)
        return out.transpose(1, 2)


class GRUEncoder(nn.Module):
    def __init__(self, embed_dim, hidden, layers, bidirectional):
        super().__init__()
        self.gru = nn.GRU(embed_dim, hidden, num_layers=layers, batch_first=True,
                          bidirectional=bidirectional)
        self.out_dim = hidden * (2 if bidirectional else 1)

    def forward(self, x, mask):
        # Packing keeps padding out of the backward direction's state.
        lengths = mask.sum(dim=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out


class TransformerEncoder(nn.Module):
    def __init__(self, embed_dim, hidden, heads, layers, max_len):
        super().__init__()
        self.positions = nn.Embedding(max_len, embed_dim)
        layer = nn.TransformerEncoderLayer(embed_dim, heads, dim_feedforward=hidden,
                                           dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out_dim = embed_dim

    def forward(self, x, mask):
        positions = torch.arange(x.shape[1], device=x.device)
        return self.encoder(x + self.positions(positions), src_key_padding_mask=~mask)


class TextNetwork(nn.Module):
    input_dtype = torch.long  # measure.py builds dummy inputs of this dtype

    def __init__(self, vocab_size, embed_dim, encoder, pooling, dropout, num_classes, max_len):
        super().__init__()
        self.vocab_size = vocab_size
        self.max_len = max_len
        # Attributes rather than globals, so TorchScript can compile forward.
        self.pad_id, self.unk_id = PAD_ID, UNK_ID
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.encoder = encoder
        self.pooling = pooling
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(encoder.out_dim, num_classes))

    def forward(self, ids):
        ids = ids[:, : self.max_len]
        # Ids from a larger vocabulary than the model's are unknown words, not a crash.
        ids = ids.masked_fill(ids >= self.vocab_size, self.unk_id)
        mask = ids != self.pad_id
        # An all-padding row still needs one position to attend to and pool over.
        mask[:, 0] = mask[:, 0] | ~mask.any(dim=1)
        h = self.encoder(self.embed(ids), mask)
        if self.pooling == "max":
            pooled = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values
        else:
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(dim=1) / m.sum(dim=1)
        return self.classifier(pooled)


class TextSpace(SearchSpace):
    name = "text"
    label = "Text classifier (conv / GRU / transformer encoder)"
    modality = "text"

    def __init__(self, vocab_size: int = 10000, embed_dims=(32, 64, 128), hidden_sizes=(64, 128)):
        self.vocab_size = int(vocab_size)
        self.embed_dims = tuple(int(e) for e in embed_dims)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        if self.vocab_size < 2:
            raise ValueError("vocab_size counts <pad> and <unk>, so it must be at least 2")
        self.decisions = [
            Decision("embed_dim", self.embed_dims),
            Decision("encoder", ENCODERS),
            # conv: filters per kernel size; gru: hidden state; transformer: feed-forward width
            Decision("hidden", self.hidden_sizes),
            Decision("conv_kernels", ("3", "3-5", "3-5-7")),
            Decision("gru_layers", (1, 2)),
            Decision("gru_bidirectional", (False, True)),
            Decision("tf_heads", (1, 2, 4)),
            Decision("tf_layers", (1, 2)),
            Decision("pooling", ("mean", "max")),
            Decision("dropout", (0.0, 0.1, 0.3)),
        ]

    def settings(self):
        return {"vocab_size": self.vocab_size, "embed_dims": list(self.embed_dims),
                "hidden_sizes": list(self.hidden_sizes)}

    def check(self, arch):
        if arch["encoder"] == "transformer" and arch["embed_dim"] % arch["tf_heads"]:
            raise InvalidArchitecture(
                f"embed_dim {arch['embed_dim']} is not divisible by tf_heads {arch['tf_heads']}")

    def canonical(self, arch):
        arch = dict(arch)
        first = {d.name: d.choices[0] for d in self.decisions}
        for encoder, names in ENCODER_DECISIONS.items():
            if encoder != arch["encoder"]:
                for name in names:
                    arch[name] = first[name]
        return arch

    def genotype(self, arch):
        arch = self.canonical(arch)
        encoder = arch["encoder"]
        if encoder == "conv":
            detail = f"conv[{arch['conv_kernels']}]"
        elif encoder == "gru":
            detail = f"{'bi' if arch['gru_bidirectional'] else ''}gru x{arch['gru_layers']}"
        else:
            detail = f"transformer x{arch['tf_layers']} h{arch['tf_heads']}"
        return (f"emb{arch['embed_dim']}|{detail}|hidden{arch['hidden']}"
                f"|{arch['pooling']}|p{arch['dropout']}")

    def build(self, arch, input_shape, num_classes):
        arch = self.validate(arch)
        if len(input_shape) != 1:
            raise ValueError(f"the text space needs input_shape (seq_len,), got {tuple(input_shape)}")
        max_len = int(input_shape[0])
        embed, hidden = arch["embed_dim"], arch["hidden"]
        if arch["encoder"] == "conv":
            encoder = ConvEncoder(embed, hidden, conv_kernel_sizes(arch["conv_kernels"]))
        elif arch["encoder"] == "gru":
            encoder = GRUEncoder(embed, hidden, arch["gru_layers"], arch["gru_bidirectional"])
        else:
            encoder = TransformerEncoder(embed, hidden, arch["tf_heads"], arch["tf_layers"], max_len)
        return TextNetwork(self.vocab_size, embed, encoder, arch["pooling"], arch["dropout"],
                           num_classes, max_len)
