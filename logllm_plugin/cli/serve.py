"""`logllm-plugin serve`: the gRPC (and HTTP) inference server, with a model, learning, or following."""
from __future__ import annotations

import logging
from typing import Optional

import click

from logllm_plugin.cli.common import Duration, analysis_overrides, load_config, run, use_json_logs

@click.command("serve")
@click.option("--model", "model_dir", help="Model directory (default: the embedded model).")
@click.option("--learn", "learn_dir", type=click.Path(file_okay=False),
              help="Learning mode: keep a history here, train models of this traffic's normal, publish them here.")
@click.option("--follow", "follow_dir", type=click.Path(file_okay=False),
              help="Serve the versions a learner publishes in this directory (another replica's --learn DIR).")
@click.option("--learn-min-sequences", type=click.IntRange(1),
              help="Learning mode: sequences received before the first model trains (default 2000).")
@click.option("--retrain-every", type=Duration(),
              help="Learning mode: retrain over the recent history this often (e.g. 6h; 0: never; default 6h).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config; its `server:` section.")
@click.option("--host", help="Address to bind (default 127.0.0.1; 0.0.0.0 for all interfaces).")
@click.option("--port", type=click.IntRange(0, 65535), help="gRPC port (default 50051; 0 picks a free one, logged at start).")
@click.option("--http-port", type=click.IntRange(0, 65535), help="Also serve HTTP/JSON (POST /v1/detect, /metrics) on this port.")
@click.option("--metrics-port", type=click.IntRange(0, 65535),
              help="Prometheus /metrics on this port without the token (on --http-port it needs the token).")
@click.option("--token-file", type=click.Path(dir_okay=False), help="File holding the bearer token callers must send.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM server certificate (chain).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert.")
@click.option("--tls-client-ca", type=click.Path(dir_okay=False), help="Require client certificates signed by this CA.")
@click.option("--max-batch", type=click.IntRange(1), help="Dynamic batching: most sequences per model call (default 64).")
@click.option("--max-wait-ms", type=click.FloatRange(0), help="Dynamic batching: longest wait to fill a batch (default 5).")
@click.option("--max-queue", type=click.IntRange(1), help="Sequences queued before RESOURCE_EXHAUSTED (default 4096).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where the model runs (default auto).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), help="Head precision.")
@click.option("--grace-s", type=click.FloatRange(0), help="On SIGTERM: time in-flight requests get to finish (default 30).")
@click.option("--verdict-cache", "verdict_cache_size", type=click.IntRange(0),
              help="Sequences (by masked lines) answered again without the model (default 50000; 0: off).")
@click.option("--threads", type=click.IntRange(1, 256), help="torch threads for the model (default: all cores).")
@click.option("--llm", "llm_dir", help="Analyze with this local Qwen model directory (default: the knowledge base).")
@click.option("--adapter", "adapter_dir", help="peft adapter for --llm.")
@click.option("--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True)
def serve_cmd(model_dir, learn_dir, follow_dir, learn_min_sequences, retrain_every, config_path, host, port,
              http_port, metrics_port, token_file, tls_cert, tls_key, tls_client_ca, max_batch, max_wait_ms,
              max_queue, device, dtype, grace_s, verdict_cache_size, threads, llm_dir, adapter_dir, log_format):
    """Serve the detector over gRPC (logllm.v1.Inference, health, reflection) and optionally HTTP.

    With --learn DIR no model is needed: verdicts are `unscored` (status `learning`) until enough
    traffic has been seen, then a model of this traffic's normal serves, retrained on a schedule.
    """
    if learn_dir and follow_dir:
        raise click.UsageError("--learn and --follow are exclusive: one learner, any number of followers")
    if follow_dir and model_dir:
        raise click.UsageError("--follow serves the learner's versions; it takes no --model")
    if (learn_min_sequences is not None or retrain_every is not None) and not learn_dir:
        raise click.UsageError("--learn-min-sequences and --retrain-every need --learn DIR")

    def work():
        from logllm_plugin.analyzers.service import build_analysis_service
        from logllm_plugin.serving.server import InferenceServer

        overrides = {"server": {
            "host": host, "port": port, "http_port": http_port, "metrics_port": metrics_port, "token_file": token_file, "tls_cert": tls_cert,
            "tls_key": tls_key, "tls_client_ca": tls_client_ca, "max_batch_sequences": max_batch,
            "max_wait_ms": max_wait_ms, "max_queue_sequences": max_queue, "device": device, "dtype": dtype,
            "grace_s": grace_s, "verdict_cache_size": verdict_cache_size, "threads": threads},
            **analysis_overrides(llm_dir, adapter_dir),
            "learning": {"min_sequences": learn_min_sequences, "retrain_every_s": retrain_every}}
        plugin_config = load_config(config_path, overrides)
        config = plugin_config.server
        if log_format == "json":
            use_json_logs()
        else:
            logging.getLogger("logllm_plugin").setLevel(logging.INFO)
        server = InferenceServer(
            config, detector_loader(plugin_config, model_dir, learn_dir, follow_dir),
            analysis_factory=lambda detector: build_analysis_service(plugin_config.analysis, signature=detector.store_ids,
                                                                      encoder=detector.encoder),
        ).start()
        server.serve_until_signal()

    run(work)


def detector_loader(plugin_config, model_dir: Optional[str], learn_dir: Optional[str], follow_dir: Optional[str]):
    """What the server scores with: a model from a file, a learner, or a follower of one.

    Learning mode and following start at once (no model to load); the store and the history are
    checked here so that an unusable directory stops `serve` with a clear message.
    """
    from logllm_plugin.detector import load_detector

    device = plugin_config.server.device
    if learn_dir:
        from logllm_plugin.learning.learner import LearningDetector

        initial = load_detector(model_dir, device=device) if model_dir else None
        learner = LearningDetector(learn_dir, plugin_config, device=device, initial=initial)
        return lambda: learner
    if follow_dir:
        from logllm_plugin.learning.follower import FollowingDetector

        follower = FollowingDetector(follow_dir, plugin_config, device=device)
        return lambda: follower
    return lambda: load_detector(model_dir, device=device)
