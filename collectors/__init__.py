"""Integrations that collect logs and write annotations back (OTel, Elasticsearch, Kibana)."""
