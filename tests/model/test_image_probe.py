"""A linear probe on frozen EfficientNet-Lite0 features separates the 23 categories."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from dermeval.synth.catalogue import default_catalogue
from dermeval.synth.render import render_condition


@pytest.mark.slow
def test_linear_probe_separates_categories(record_property):
    from dermeval.encoders.image import ImageEncoder

    cat = default_catalogue()
    categories = cat.categories
    rng = np.random.default_rng(0)
    images, labels = [], []
    for _k in range(10):  # 10 images per category, random condition and skin type each time
        for ci, category in enumerate(categories):
            cond = cat.by_category[category][int(rng.integers(len(cat.by_category[category])))]
            images.append(render_condition(cond, int(rng.integers(1, 7)), int(rng.integers(2**31))))
            labels.append(ci)
    feats = ImageEncoder().encode(images)
    labels = np.array(labels)
    train = np.arange(len(labels)) < 7 * len(categories)
    scaler = StandardScaler().fit(feats[train])
    probe = LogisticRegression(max_iter=2000, C=0.5).fit(scaler.transform(feats[train]), labels[train])
    acc = float((probe.predict(scaler.transform(feats[~train])) == labels[~train]).mean())
    record_property("probe_accuracy", acc)
    print(f"linear probe accuracy on 23 categories: {acc:.3f} (chance {1 / 23:.3f})")
    assert acc > 0.5, acc  # chance is 0.043


def test_encoder_shape_and_determinism():
    from dermeval.encoders.image import FEATURE_DIM, ImageEncoder

    enc = ImageEncoder()
    imgs = [Image.new("RGB", (100, 80), (200, 150, 120)), Image.new("RGB", (224, 224), (60, 40, 30))]
    a, b = enc.encode(imgs), enc.encode(imgs)
    assert a.shape == (2, FEATURE_DIM) and np.allclose(a, b)
    assert not np.allclose(a[0], a[1])
