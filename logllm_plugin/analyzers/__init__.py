"""Analyzers turn an anomalous sequence and its verdict into an explanation an on-call engineer can act on.

`base` holds the data types and the interface; `knowledge_base` is the default (no LLM);
`qwen` runs a local (optionally fine-tuned) Qwen chat model; `service` adds personal-data
masking, the per-signature cache, the rate limit and the fallback to the knowledge base.
"""
