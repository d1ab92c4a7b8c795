"""LoRA adapters as GGUF files llama.cpp loads (``llama-server --lora``, llama-cpp-python ``lora_path``).

Written with the ``gguf`` package the way llama.cpp's ``convert_lora_to_gguf.py`` writes them (general.type
``adapter``, adapter.type ``lora``, adapter.lora.alpha; ``<base tensor>.lora_a`` of shape rank x in and
``.lora_b`` of out x rank, peft's own layout), without that script's need for a Hugging Face config directory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def architecture(base: Path) -> str:
    """The base GGUF's ``general.architecture`` (the adapter must carry the same, llama.cpp checks it)."""
    import gguf

    reader = gguf.GGUFReader(str(base))
    field = reader.get_field("general.architecture")
    if field is None:
        raise ValueError(f"{base} has no general.architecture")
    return str(field.contents())


def write(path: Path, arch: str, alpha: float, tensors: Mapping[str, Any], name: str = "") -> None:
    """Write ``tensors`` (GGUF name -> float32 array) as a LoRA adapter GGUF at ``path`` (atomically)."""
    import gguf

    partial = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    if name:
        writer.add_name(name)
    for tensor_name in sorted(tensors):
        writer.add_tensor(tensor_name, tensors[tensor_name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(path)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
