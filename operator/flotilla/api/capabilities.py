"""What each serving runtime accepts, as data: the API validates against this table, the CRD's CEL rules and
the runtime enum are generated from it.

It lives in the API layer (the lowest one) because the schema needs it; the pod builders live in
`flotilla.runtimes`, one module each. Adding a runtime (e.g. ray-serve) = one entry here + one module there
(a unit test checks the two tables name the same runtimes); nothing else changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from flotilla.api import messages

GpuNeed = Literal["required", "optional", "none"]
SourceScheme = Literal["hf", "pvc", "s3", "http", "https", "file"]
SOURCE_SCHEMES: tuple[SourceScheme, ...] = ("hf", "pvc", "s3", "http", "https", "file")


@dataclass(frozen=True)
class RuntimeCapabilities:
    """The parts of a runtime the API must know to validate a model before anything is rendered."""

    name: str
    """The `runtime` value in the spec."""
    gpu: GpuNeed
    """Whether `accelerator.gpus >= 1` is required, allowed, or ignored."""
    schemes: tuple[SourceScheme, ...]
    """Source URI schemes the runtime can load."""
    file_suffix: str | None
    """When set, non-hf sources must name a single file with this suffix (e.g. `.gguf`; a URL query may
    follow)."""
    source_hint: str
    """What the runtime can load, for the error message."""
    quantization_pattern: str
    """RE2/Python-compatible regex the `quantization` value must match in full."""
    quantization_hint: str
    """Allowed quantizations, for the error message."""
    multiple_choices: bool = False
    """The server answers an OpenAI request with `n` > 1 (test-time compute then asks once, not n times)."""

    def source_message(self) -> str:
        return messages.runtime_source(self.name, self.source_hint)

    def quantization_message(self) -> str:
        return messages.runtime_quantization(self.name, self.quantization_hint)

    def gpu_message(self) -> str:
        return messages.runtime_needs_gpu(self.name)

    def accepts_source(self, scheme: str, path: str) -> bool:
        """True when the runtime can load `scheme://path`."""
        if scheme not in self.schemes:
            return False
        file_path = path.split("?", 1)[0]  # URLs may carry a query (e.g. ?download=true)
        return scheme == "hf" or self.file_suffix is None or file_path.lower().endswith(self.file_suffix)

    def accepts_quantization(self, quantization: str) -> bool:
        return re.fullmatch(self.quantization_pattern, quantization) is not None


VLLM = RuntimeCapabilities(
    name="vllm",
    gpu="required",
    schemes=("hf", "pvc", "s3", "file"),
    file_suffix=None,
    source_hint="use an hf:// repository, or a pvc://, s3:// or file:// directory holding the model",
    quantization_pattern="^(awq|gptq|fp8)$",
    quantization_hint="one of awq, gptq, fp8",
    multiple_choices=True,
)

LLAMACPP = RuntimeCapabilities(
    name="llamacpp",
    gpu="optional",
    schemes=("hf", "pvc", "s3", "http", "https", "file"),
    file_suffix=".gguf",
    source_hint="use an hf:// GGUF repository or a pvc://, s3://, http(s):// or file:// URI ending in .gguf",
    quantization_pattern="^(Q[2-8]_[0-9A-Z_]+|IQ[1-4]_[0-9A-Z_]+|F16|BF16|F32)$",
    quantization_hint="a GGUF type such as Q4_K_M, Q8_0 or F16",
)

CAPABILITIES: dict[str, RuntimeCapabilities] = {caps.name: caps for caps in (VLLM, LLAMACPP)}
"""Runtime name -> capabilities, in the order the enum lists them."""
