"""msnn_hf: multi-stream neural networks for the Hugging Face ecosystem.

``import msnn_hf`` registers every configuration, model and processor with the Auto classes
(`AutoConfig`, `AutoModel`, `AutoModelForSequenceClassification`, `AutoModelForMaskedLM`,
`AutoModelForCausalLM`, `AutoModelForImageTextToText`, `AutoProcessor`), and the EfficientNet-Lite image encoder
(`AutoModel`, `AutoModelForImageClassification`, `AutoImageProcessor`).

Example:

```python
>>> import msnn_hf
>>> from transformers import AutoModelForSequenceClassification
>>> model = AutoModelForSequenceClassification.from_pretrained("msnn/li-bert-sst5")  # doctest: +SKIP
```
"""

from . import image_processing_efficientnet_lite as _efficientnet_lite_processing
from . import modeling_efficientnet_lite as _efficientnet_lite
from . import modeling_multistream_bert as _bert
from . import modeling_multistream_gpt2 as _gpt2
from . import modeling_multistream_vision as _vision
from . import processing_multistream as _processing
from . import processing_multistream_vision as _processing_vision
from .callbacks import StreamWeightsCallback
from .configuration_efficientnet_lite import EfficientNetLiteConfig
from .configuration_multistream_bert import MultiStreamBertConfig
from .configuration_multistream_gpt2 import MultiStreamGPT2Config
from .configuration_multistream_vision import MultiStreamVisionEncoderDecoderConfig
from .image_processing_efficientnet_lite import EfficientNetLiteImageProcessor, ImageLoadError
from .integration import DirectMixing, IntegrationOutput, LinearIntegration, build_integration
from .modeling_efficientnet_lite import (
    EfficientNetLiteForImageClassification,
    EfficientNetLiteModel,
    EfficientNetLitePreTrainedModel,
)
from .modeling_multistream_bert import (
    MultiStreamBertForMaskedLM,
    MultiStreamBertForSequenceClassification,
    MultiStreamBertModel,
    MultiStreamBertPreTrainedModel,
)
from .modeling_multistream_gpt2 import (
    MultiStreamGPT2LMHeadModel,
    MultiStreamGPT2Model,
    MultiStreamGPT2PreTrainedModel,
)
from .modeling_multistream_vision import (
    MultiStreamVisionEncoderDecoder,
    MultiStreamVisionGPT2LMHeadModel,
    MultiStreamVisionSeq2SeqLMOutput,
)
from .processing_multistream import MultiStreamProcessor
from .processing_multistream_vision import MultiStreamVisionProcessor

__version__ = "0.1.0"

_bert.register()
_gpt2.register()
_processing.register_processor((MultiStreamBertConfig, MultiStreamGPT2Config))
_efficientnet_lite.register()
_efficientnet_lite_processing.register()
_vision.register()
_processing_vision.register_processor((MultiStreamVisionEncoderDecoderConfig,))

__all__ = [
    "DirectMixing",
    "EfficientNetLiteConfig",
    "EfficientNetLiteForImageClassification",
    "EfficientNetLiteImageProcessor",
    "EfficientNetLiteModel",
    "EfficientNetLitePreTrainedModel",
    "ImageLoadError",
    "IntegrationOutput",
    "LinearIntegration",
    "MultiStreamBertConfig",
    "MultiStreamBertForMaskedLM",
    "MultiStreamBertForSequenceClassification",
    "MultiStreamBertModel",
    "MultiStreamBertPreTrainedModel",
    "MultiStreamGPT2Config",
    "MultiStreamGPT2LMHeadModel",
    "MultiStreamGPT2Model",
    "MultiStreamGPT2PreTrainedModel",
    "MultiStreamProcessor",
    "MultiStreamVisionEncoderDecoder",
    "MultiStreamVisionEncoderDecoderConfig",
    "MultiStreamVisionGPT2LMHeadModel",
    "MultiStreamVisionProcessor",
    "MultiStreamVisionSeq2SeqLMOutput",
    "StreamWeightsCallback",
    "build_integration",
]
