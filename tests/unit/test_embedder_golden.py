"""Real ImageNet weights of the offline default against stored golden values.

The image is a generated product picture (a red striped T-shirt from the demo shop's drawing
code). Regenerate the golden file, after a deliberate change only, with
``LOOKALIKE_REGENERATE_GOLDEN=1 pytest tests/unit/test_embedder_golden.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from services.demo_shop.catalog import generate_product
from services.demo_shop.images import render_image
from services.embedder.inference import Embedder
from services.modellab.models import create_backbone

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden" / "efficientnet_lite0.json"
JERSEY = 610  # ImageNet-1k "jersey, T-shirt, tee shirt"


def _image() -> bytes:
    return render_image(generate_product(0, 0, category="tops"), "front")


def test_efficientnet_lite0_matches_its_golden_values() -> None:
    embedder = Embedder("efficientnet_lite0", runtime="torch", device="cpu", workers=1)
    vector = embedder.embed([_image()])[0]
    backbone = create_backbone("efficientnet_lite0")
    x = torch.from_numpy(backbone.preprocess(_image()))[None]
    with torch.inference_mode():
        probabilities = backbone.imagenet_logits(backbone(x)).softmax(dim=1)[0]
    top = int(probabilities.argmax())
    if os.environ.get("LOOKALIKE_REGENERATE_GOLDEN"):
        GOLDEN.write_text(
            json.dumps(
                {
                    "image": "demo shop generate_product(0, 0, category='tops'), front, 400x500",
                    "top_class": top,
                    "top_probability": round(float(probabilities[top]), 4),
                    "embedding": [round(float(v), 6) for v in vector],
                }
            )
            + "\n"
        )
    golden = json.loads(GOLDEN.read_text())
    assert top == golden["top_class"] == JERSEY
    assert float(probabilities[top]) == pytest.approx(golden["top_probability"], abs=0.02)
    stored = np.asarray(golden["embedding"], dtype=np.float32)
    assert vector.shape == stored.shape == (1280,)
    assert float(vector @ stored) >= 0.999
    assert np.abs(vector - stored).max() < 5e-3
