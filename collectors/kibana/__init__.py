"""Kibana saved objects for annotated indexes (`logllm-plugin kibana export|import`)."""
