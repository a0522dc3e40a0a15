"""The language-model task kit: data sources, BPE tokenizer, packing dataloader, evaluate_bpb.

Imported only when used (it needs torch, numpy, tiktoken and rustbpe: the `lm` extra);
neither `import pytest_autoresearch` nor the plugin imports it. Entry points:
`dataset.prepare()` for data, `evaluate.evaluate_bpb()` for the metric, and the pytest
fixtures in `pytest_autoresearch.lm.fixtures`.
"""
