"""Trainers: the small BERT+MoE detector (and, later, LLM fine-tuning), data helpers, evaluation."""
