"""The language-model task kit: data sources, BPE tokenizer, packing dataloader, evaluate_bpb, scorer.

Imported only when used (it needs torch, numpy, tiktoken and rustbpe: the `lm` extra);
neither `import pytest_autoresearch` nor the plugin imports it. Entry points:
`dataset.prepare()` for data, `evaluate.evaluate_bpb()` for the in-process metric,
`export.save_model()` for the artifact train.py writes, `scorer.score` for the frozen
scorer that judges it (run through `pytest_autoresearch.scoring.run_scorer`), and the
pytest fixtures in `pytest_autoresearch.lm.fixtures`.
"""
