"""The dataset names recipes and scripts rely on are registered, each with a one-line summary."""

from __future__ import annotations

import pytest

from deepstrata.catalog import list_components

PROMISED = [
    "digits", "sample_images", "iris", "wine", "breast_cancer", "diabetes", "sunspots", "co2", "karate", "python_text",
    "mnist", "fashion_mnist", "kmnist", "cifar10", "cifar100", "image_folder", "csv", "parquet", "text_files", "jsonl",
    "adult", "german_credit",
]  # fmt: skip


@pytest.mark.parametrize("name", PROMISED)
def test_promised_dataset_is_listed_with_a_summary(name: str) -> None:
    listed = list_components("dataset")
    assert name in listed, f"dataset '{name}' is not registered"
    assert listed[name].strip() and "\n" not in listed[name]
