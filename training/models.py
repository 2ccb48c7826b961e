"""Encoders and heads with one shape: ``encode(x, lengths) -> z`` in ``Z = R^k``, ``head(z) -> logits``.

A model is rebuilt from a JSON-serialisable ``spec`` (stored in every checkpoint):
``{"arch": ..., "input_shape": [...], "feat_dim": k, "num_classes": C, "proj_dim": None | k'}``.
``proj_dim`` adds a linear projection from the encoder's own width into ``Z`` (used when a student's
feature size differs from the teacher's). Architectures:

- ``cnn``: a small CNN for ``(1, 28, 28)`` and ``(1, 8, 8)`` images;
- ``seq``: a 1-D convolutional encoder for padded MFCC sequences ``(T, F)`` with ``lengths``,
  masked so padding never changes the output, then mean-pooled over the real frames;
- ``mlp``: two hidden layers for vectors;
- ``resnet18`` / ``resnet34``: ResNet encoders for ``(c, H, W)`` images or spectrograms (random
  initialisation: no weights can be downloaded here).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

ARCHS = ("cnn", "seq", "mlp", "resnet18", "resnet34")


class SmallCNN(nn.Module):
    def __init__(self, in_ch: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        )

    def forward(self, x, lengths=None):
        return self.net(x).mean(dim=(2, 3))


class SeqEncoder(nn.Module):
    """Masked 1-D convolutions over time; padding beyond ``lengths`` is zeroed before every layer."""

    def __init__(self, n_features: int, width: int):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(n_features, 64, 5, padding=2), nn.Conv1d(64, 64, 5, padding=2),
                                    nn.Conv1d(64, width, 3, padding=1)])
        self.norms = nn.ModuleList([nn.GroupNorm(1, 64), nn.GroupNorm(1, 64), nn.GroupNorm(1, width)])

    def forward(self, x, lengths=None):
        h = x.transpose(1, 2)  # (B, F, T)
        T = h.shape[2]
        mask = (torch.ones(h.shape[0], T, device=h.device) if lengths is None
                else (torch.arange(T, device=h.device)[None, :] < lengths[:, None]).to(h.dtype))[:, None, :]
        for conv, norm in zip(self.convs, self.norms):
            h = F.relu(norm(conv(h * mask)))
        return (h * mask).sum(2) / mask.sum(2).clamp_min(1.0)


class MLPEncoder(nn.Module):
    def __init__(self, in_dim: int, width: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, width), nn.ReLU())

    def forward(self, x, lengths=None):
        return self.net(x.flatten(1))


class _Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                      if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))) + self.short(x))


class ResNetEncoder(nn.Module):
    """ResNet-18/34 (He et al. 2016) trunk, global average pooled: 512 features."""

    def __init__(self, in_ch: int, depth: int):
        super().__init__()
        blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}[depth]
        self.stem = nn.Sequential(nn.Conv2d(in_ch, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for i, (n, cout) in enumerate(zip(blocks, (64, 128, 256, 512))):
            for j in range(n):
                layers.append(_Basic(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)

    def forward(self, x, lengths=None):
        return self.layers(self.stem(x)).mean(dim=(2, 3))


class Model(nn.Module):
    """``encoder`` -> optional ``proj`` into ``Z`` -> linear ``classifier``."""

    def __init__(self, spec: dict):
        super().__init__()
        self.spec = dict(spec)
        arch, shape, k = spec["arch"], list(spec["input_shape"]), int(spec["feat_dim"])
        width = int(spec.get("encoder_width") or k)
        if arch == "cnn":
            self.encoder = SmallCNN(shape[0], width)
        elif arch == "seq":
            self.encoder = SeqEncoder(shape[-1], width)
        elif arch == "mlp":
            self.encoder = MLPEncoder(int(torch.tensor(shape).prod()), width)
        elif arch in ("resnet18", "resnet34"):
            self.encoder = ResNetEncoder(shape[0], int(arch[6:]))
            width = 512
        else:
            raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
        self.proj = nn.Linear(width, k) if width != k else nn.Identity()
        self.classifier = nn.Linear(k, int(spec["num_classes"]))

    def encode(self, x, lengths=None):
        return self.proj(self.encoder(x, lengths))

    def head(self, z):
        return self.classifier(z)

    def forward(self, x, lengths=None, part: str = "all"):
        """``part``: ``"all"`` (logits), ``"encode"`` (features) or ``"head"`` (``x`` are features).

        One entry point, so ``torch.func.functional_call`` can run either half at other parameters.
        """
        if part == "encode":
            return self.encode(x, lengths)
        if part == "head":
            return self.head(x)
        return self.head(self.encode(x, lengths))

    def head_params(self) -> list[str]:
        return [n for n, _ in self.named_parameters() if n.startswith("classifier.")]


def default_arch(input_shape, has_lengths: bool) -> str:
    """The architecture a modality gets unless one is asked for."""
    if has_lengths or len(input_shape) == 2:
        return "seq"
    if len(input_shape) == 1:
        return "mlp"
    return "cnn" if input_shape[-1] <= 64 else "resnet18"


def make_spec(data, feat_dim: int, arch: str | None = None, encoder_width: int | None = None) -> dict:
    """Model spec for a :class:`~training.datasets.ModalityData`."""
    arch = arch or default_arch(data.input_shape, data.lengths is not None)
    return {"arch": arch, "input_shape": list(data.input_shape), "feat_dim": int(feat_dim),
            "num_classes": data.num_classes, "encoder_width": encoder_width}


def count_structure(model: Model) -> dict:
    """Parameters and the units of every layer with weights: the inputs of the VC-dimension bound.

    A convolution layer's units are its output channels times its output positions (measured by one
    forward pass on a zero input of the model's input shape); a linear layer's are its outputs.
    """
    params = sum(p.numel() for p in model.parameters())
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    units = {}
    hooks = [m.register_forward_hook(lambda m, i, o: units.__setitem__(m, int(o[0].numel()))) for m in layers]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *model.spec["input_shape"]))
    model.train(was_training)
    for h in hooks:
        h.remove()
    per_layer = [units[m] for m in layers if m in units]
    return {"params": int(params), "layers": len(per_layer), "units_per_layer": per_layer,
            "units": int(sum(per_layer))}
