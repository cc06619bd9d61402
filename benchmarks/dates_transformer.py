"""Date normalisation with the Transformer encoder-decoder (recipes/dates_transformer.yaml); see dates_seq2seq.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dates_seq2seq import main  # noqa: E402

if __name__ == "__main__":
    main("recipes/dates_transformer.yaml", "dates_transformer")
