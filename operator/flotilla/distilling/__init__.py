"""Distillation: fine-tune a small model on the answers a fleet's cloud teacher gave (docs/distillation.md).

``examples`` (pure) reads and renders the exported pairs, ``tuning`` trains a LoRA adapter with the optional
``finetune`` extra, ``adapters`` writes it as a GGUF llama.cpp loads, ``manifests`` records how it was made.
"""
