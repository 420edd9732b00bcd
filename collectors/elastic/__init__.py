"""Elasticsearch / OpenSearch integration: setup (mappings, pipeline), annotator, backfill, history reader.

    logllm-plugin es setup|annotate|backfill ...      (logllm_plugin/cli/es.py)
    logllm-plugin train small --from-es URL ...       (collectors.elastic.history)
"""
