"""The tabular models: embeddings and tokens as defined, invalid codes read as "<unseen>", and they learn category interactions.

The registry-wide contract (tests/models/test_contract.py, tests/export/test_export_contract.py)
already covers forward/backward, save/load, the Backbone interface and ONNX export for both.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepstrata.models.ft_transformer import FTTransformer
from deepstrata.models.tabular_mlp import TabularMLP, embedding_dim
from deepstrata.nn.attention import reference_attention
from tests.conftest import REPO
from tests.data.test_adult import TRAIN_ROWS, write_adult


def table(n: int = 16, seed: int = 0) -> torch.Tensor:
    """(n, 2 + 3): two numeric columns, then codes of columns with 3, 4 and 2 levels."""
    g = torch.Generator().manual_seed(seed)
    numeric = torch.randn(n, 2, generator=g)
    codes = torch.stack([torch.randint(0, c, (n,), generator=g) for c in (3, 4, 2)], dim=1).float()
    return torch.cat([numeric, codes], dim=1)


def test_embedding_width_rule() -> None:
    assert [embedding_dim(c) for c in (2, 3, 9, 17, 43, 1000)] == [2, 3, 5, 8, 13, 16]


def test_tabular_mlp_concatenates_numbers_and_each_columns_embedding() -> None:
    torch.manual_seed(0)
    model = TabularMLP(numeric_features=2, categorical_cardinalities=[3, 4, 2], num_classes=2, hidden=(8,))
    x = table()
    codes = x[:, 2:].long()
    expected = torch.cat([x[:, :2]] + [model.embeddings[j].weight[codes[:, j]] for j in range(3)], dim=1)
    torch.testing.assert_close(model.embed(x), expected, rtol=0, atol=0)
    assert model.categorical_embeddings(x).shape == (16, model.embedding_width) == (16, 3 + 3 + 2)
    # A code outside a column's range, or negative, reads as its last level ("<unseen>"); 1.0000001 rounds to 1.
    odd = x.clone()
    odd[0, 2], odd[1, 3], odd[2, 4] = 7.0, -1.0, 1.0000001
    got = model.categorical_embeddings(odd)
    torch.testing.assert_close(got[0, :3], model.embeddings[0].weight[2])
    torch.testing.assert_close(got[1, 3:6], model.embeddings[1].weight[3])
    torch.testing.assert_close(got[2, 6:], model.embeddings[2].weight[1])
    with pytest.raises(ValueError, match=r"TabularMLP expected \(N, 5\) input, got \(16, 4\)"):
        model(x[:, :4])


def test_ft_tokenizer_and_blocks_follow_the_definition() -> None:
    torch.manual_seed(0)
    model = FTTransformer(numeric_features=2, categorical_cardinalities=[3, 4, 2], num_classes=2, d_token=8, n_blocks=2, heads=2).eval()
    tok = model.tokenizer
    x = table()
    tokens = tok(x)
    assert tokens.shape == (16, 1 + 5, 8)
    torch.testing.assert_close(tokens[:, 0], tok.cls.expand(16, 8))
    for j in range(2):
        torch.testing.assert_close(tokens[:, 1 + j], x[:, j : j + 1] * tok.numeric_weight[j] + tok.numeric_bias[j])
    offsets = [0, 3, 7]
    for j in range(3):
        torch.testing.assert_close(tokens[:, 3 + j], tok.categories.weight[offsets[j] + x[:, 2 + j].long()] + tok.categorical_bias[j])
    # The first block has no LayerNorm before attention; the others do (Gorishniy et al. 2021).
    assert isinstance(model.blocks[0].attn_norm, torch.nn.Identity) and isinstance(model.blocks[1].attn_norm, torch.nn.LayerNorm)
    # One block written out: x + MHA(LN(x)), then x + W2 (a * relu(b)) with [a, b] = W1 LN(x).
    block, h = model.blocks[1], tokens
    a = block.attn_norm(h)
    heads = lambda t: t.view(16, 6, 2, 4).transpose(1, 2)  # noqa: E731
    att, weights = reference_attention(heads(block.attn.q_proj(a)), heads(block.attn.k_proj(a)), heads(block.attn.v_proj(a)))
    h1 = h + block.attn.out_proj(att.transpose(1, 2).reshape(16, 6, 8))
    u, v = block.ffn.linear1(block.ffn_norm(h1)).chunk(2, dim=-1)
    expected = h1 + block.ffn.linear2(u * torch.relu(v))
    with torch.no_grad():
        got, maps = block(h, return_attention=True)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(maps, weights)
        all_maps = model.attention_maps(x)
    assert len(all_maps) == 2 and all_maps[0].shape == (16, 2, 6, 6)
    torch.testing.assert_close(all_maps[0].sum(-1), torch.ones(16, 2, 6))
    # The head reads only [CLS]: LayerNorm -> ReLU -> Linear.
    feats = model.forward_features(x)
    torch.testing.assert_close(model(x), model.head(torch.relu(model.head_norm(feats[:, 0]))))


@pytest.mark.parametrize("make", [
    lambda: TabularMLP(numeric_features=1, categorical_cardinalities=[4, 4], num_classes=2, hidden=(32,), dropout=0.0),
    lambda: FTTransformer(numeric_features=1, categorical_cardinalities=[4, 4], num_classes=2, d_token=16, n_blocks=1, heads=2, attention_dropout=0.0, ffn_dropout=0.0),
], ids=["tabular_mlp", "ft_transformer"])
def test_learns_an_interaction_of_two_categories(make) -> None:
    """label = (a + b) mod 2: no single column says anything, the pair says everything."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 4, (512,), generator=g), torch.randint(0, 4, (512,), generator=g)
    x = torch.stack([torch.randn(512, generator=g), a.float(), b.float()], dim=1)
    y = (a + b) % 2
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    for _ in range(200):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    assert (model(x).argmax(1) == y).float().mean() >= 0.99


@pytest.mark.e2e
def test_the_adult_recipes_train_end_to_end(tmp_path: Path) -> None:
    """A tiny file in Adult's format through the real recipes: the data fills numeric_features and cardinalities."""
    import yaml

    from deepstrata.api import train
    from deepstrata.run.run import Run

    root = write_adult(tmp_path / "adult", train=[r for _ in range(8) for r in TRAIN_ROWS])
    mlp = yaml.safe_load((REPO / "recipes" / "adult_mlp.yaml").read_text())
    ft = yaml.safe_load((REPO / "recipes" / "adult_ft_transformer.yaml").read_text())
    ft["model"].update(d_token=16, n_blocks=1)
    plain = {**mlp, "model": {"name": "mlp", "hidden": [16]}}  # a plain MLP reads the codes as numbers: it runs
    for recipe in (mlp, ft, plain):
        recipe.update(output_dir=str(tmp_path / "runs"))
        recipe["data"].update(root=str(root), batch_size=16)
        recipe["trainer"].update(max_epochs=2, progress="off")
        result = train(recipe)
        assert 0.0 <= result.metrics["test/accuracy"] <= 1.0
        spec = Run(result.run_dir).spec
        if spec["architecture"] == "mlp":
            assert spec["kwargs"]["in_features"] == 14
        else:
            assert spec["kwargs"]["numeric_features"] == 6 and len(spec["kwargs"]["categorical_cardinalities"]) == 8
