"""Small models the attribution tests explain: a LeNet trained briefly on MNIST, and untrained tiny ones.

The MNIST LeNet is trained for a few seconds on 2,048 training images, so its maps come from a
model that reads digits (over 90% on the next 64 images), not from random weights.
"""

from __future__ import annotations

import torch
from torch import nn


def mnist_images(n_train: int = 2048, n_eval: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_eval, y_eval) from the first n_train + n_eval MNIST training images, in [0, 1]."""
    from deepstrata.data.mnist import mnist

    data = mnist(limit=n_train + n_eval)
    return data.x[:n_train], data.y[:n_train], data.x[n_train:], data.y[n_train:]


def train_briefly(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 4, lr: float = 3e-3, seed: int = 0) -> nn.Module:
    """A few epochs of Adam on (x, y) in batches of 64; returns the model in eval mode."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def trained_mnist_lenet() -> tuple[nn.Module, torch.Tensor, torch.Tensor, float]:
    """(LeNet-5 trained on 2,048 MNIST images, 64 held-out images, their labels, accuracy on them)."""
    from deepstrata.models.lenet import lenet5

    x, y, x_eval, y_eval = mnist_images()
    torch.manual_seed(0)
    model = train_briefly(lenet5(), x, y, epochs=3)
    with torch.no_grad():
        accuracy = float((model(x_eval).argmax(1) == y_eval).float().mean())
    return model, x_eval, y_eval, accuracy


def tiny_cnn(seed: int = 0) -> nn.Module:
    """An untrained small_cnn (widths 4, 8, no batch norm) for 1x8x8 inputs, in eval mode."""
    from deepstrata.models.cnn import small_cnn

    torch.manual_seed(seed)
    return small_cnn(widths=[4, 8], norm="none", dropout=0.0).eval()


def tiny_mlp(in_features: int = 64, seed: int = 0) -> nn.Module:
    from deepstrata.models.mlp import mlp

    torch.manual_seed(seed)
    return mlp(in_features=in_features, num_classes=10, hidden=[16]).eval()


def tiny_vit(seed: int = 0) -> nn.Module:
    from deepstrata.models.vit import vit

    torch.manual_seed(seed)
    return vit(num_classes=10, image_size=8, patch_size=2, dim=16, depth=2, heads=2).eval()


def tabular_mlp(features: int = 8, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """(an MLP trained briefly on a synthetic table with an interaction and a square, its 512 rows)."""
    from deepstrata.models.mlp import mlp

    torch.manual_seed(seed)
    x = torch.randn(512, features)
    y = (x[:, 0] * x[:, 1] + x[:, 2] - x[:, 3] ** 2 + 0.5 * x[:, 4] > 0).long()
    return train_briefly(mlp(in_features=features, num_classes=2, hidden=[32]), x, y, epochs=20, seed=seed), x


def tiny_bert(pooling: str = "mean", seed: int = 0) -> nn.Module:
    """An untrained 2-block bert_classifier (vocab 20, dim 16, 2 heads, no dropout), in eval mode."""
    from deepstrata.models.bert import bert_classifier

    torch.manual_seed(seed)
    return bert_classifier(vocab_size=20, num_classes=3, dim=16, depth=2, num_heads=2, max_len=16, dropout=0.0, pooling=pooling).eval()


def tiny_hf_encoder(folder, seed: int = 0) -> nn.Module:
    """hf_encoder_classifier (the MiniLM wrapper) on a 2-layer, 32-wide Hugging Face BERT config written to `folder`."""
    import json

    from deepstrata.transfer.hf_encoder import hf_encoder_classifier

    config = {
        "model_type": "bert", "architectures": ["BertModel"], "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 32, "type_vocab_size": 2,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "pad_token_id": 0,
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(seed)
    return hf_encoder_classifier(num_classes=3, path=str(folder), pretrained=False).eval()
