"""Every architecture has the shape encode(x) -> (B, k), head(z) -> (B, C); padding never leaks."""

import pytest
import torch

from training.models import Model, count_structure, default_arch


@pytest.mark.parametrize("arch,shape", [("cnn", (1, 28, 28)), ("cnn", (1, 8, 8)), ("seq", (30, 13)), ("mlp", (7,)),
                                        ("resnet18", (3, 32, 32)), ("resnet34", (1, 32, 24))])
def test_shapes_and_projection(arch, shape):
    m = Model({"arch": arch, "input_shape": list(shape), "feat_dim": 16, "num_classes": 5}).eval()
    x = torch.randn(3, *shape)
    lengths = torch.tensor([30, 12, 5]) if arch == "seq" else None
    z = m.encode(x, lengths)
    assert z.shape == (3, 16) and m.head(z).shape == (3, 5)
    assert torch.equal(m(x, lengths), m.head(z))
    if arch.startswith("resnet"):  # 512 encoder features projected into Z
        assert isinstance(m.proj, torch.nn.Linear) and m.proj.in_features == 512


def test_sequence_padding_is_masked():
    m = Model({"arch": "seq", "input_shape": [20, 13], "feat_dim": 8, "num_classes": 3}).eval()
    x = torch.randn(1, 20, 13)
    x[:, 9:] = 0
    garbage = x.clone()
    garbage[:, 9:] = torch.randn(1, 11, 13) * 100  # whatever lies beyond the length must not matter
    lengths = torch.tensor([9])
    assert torch.allclose(m.encode(x, lengths), m.encode(garbage, lengths), atol=1e-6)
    assert not torch.allclose(m.encode(x, lengths), m.encode(x, torch.tensor([15])), atol=1e-6)


def test_default_architectures_and_structure():
    assert default_arch((1, 28, 28), False) == "cnn"
    assert default_arch((92, 13), True) == "seq"
    assert default_arch((5,), False) == "mlp"
    assert default_arch((3, 224, 224), False) == "resnet18"
    s = count_structure(Model({"arch": "mlp", "input_shape": [4], "feat_dim": 3, "num_classes": 2}))
    assert s == {"params": 4 * 128 + 128 + 128 * 128 + 128 + 128 * 3 + 3 + 3 * 2 + 2, "layers": 4,
                 "units_per_layer": [128, 128, 3, 2], "units": 128 + 128 + 3 + 2}
    # a convolution layer's units are its channels times its output positions (issue 11 #5)
    cnn = count_structure(Model({"arch": "cnn", "input_shape": [1, 8, 8], "feat_dim": 16, "num_classes": 3}))
    assert cnn["units_per_layer"] == [32 * 64, 32 * 64, 64 * 16, 16 * 16, 3]
