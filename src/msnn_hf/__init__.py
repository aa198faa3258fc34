"""msnn_hf: multi-stream neural networks for the Hugging Face ecosystem.

``import msnn_hf`` registers every configuration, model and processor with the Auto classes.
"""

# NOTE (development scaffolding): families are imported as they land; replaced by explicit imports.
import importlib
import importlib.util

__version__ = "0.1.0"

_FAMILIES = {
    "processing_multistream": ["MultiStreamProcessor"],
    "configuration_multistream_bert": ["MultiStreamBertConfig"],
    "modeling_multistream_bert": [
        "MultiStreamBertModel",
        "MultiStreamBertForSequenceClassification",
        "MultiStreamBertForMaskedLM",
        "MultiStreamBertPreTrainedModel",
    ],
    "configuration_multistream_gpt2": ["MultiStreamGPT2Config"],
    "modeling_multistream_gpt2": ["MultiStreamGPT2Model", "MultiStreamGPT2LMHeadModel"],
}

__all__ = []
for _mod, _names in _FAMILIES.items():
    if importlib.util.find_spec(f"{__name__}.{_mod}") is None:
        continue
    _m = importlib.import_module(f"{__name__}.{_mod}")
    for _n in _names:
        if hasattr(_m, _n):
            globals()[_n] = getattr(_m, _n)
            __all__.append(_n)
    if hasattr(_m, "register"):
        _m.register()
    if hasattr(_m, "register_processor"):
        _m.register_processor()
