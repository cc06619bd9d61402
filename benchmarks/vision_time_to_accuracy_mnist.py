"""MNIST part of the vision benchmark: LeNet-5, ResNet, ViT and the capsule network on the
official 10,000-image test set, next to scikit-learn baselines (see vision_time_to_accuracy.py).

Problem: the MNIST recipes promise floors (99.1 / 99.5 / 98.0 / 99.2%) within five minutes of
training, and only a timed run on this machine can show whether they hold.
Idea: reuse the digits benchmark's time-to-accuracy callback on the MNIST recipes; it is a
separate benchmark because it costs about half an hour instead of two minutes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vision_time_to_accuracy import main  # noqa: E402

if __name__ == "__main__":
    main("mnist")
