"""`logllm-plugin otel bridge`: the OTLP bridge between two collector pipelines (DESIGN §5)."""
from __future__ import annotations

import logging

import click

from logllm_plugin.cli.common import read_token_file, run, use_json_logs
from logllm_plugin.sequencer import SequencerConfig


@click.group("otel")
def otel() -> None:
    """OpenTelemetry integration (the SDK processor is `collectors.otel.LogLLMProcessor`)."""


@otel.command("bridge")
@click.option("--listen", default="127.0.0.1:4319", show_default=True, help="OTLP/gRPC address the collector exports to.")
@click.option("--listen-http", help="Also accept OTLP/HTTP (POST /v1/logs, protobuf or JSON) on HOST:PORT.")
@click.option("--forward", required=True, help="OTLP/gRPC receiver that gets the annotated logs (HOST:PORT).")
@click.option("--server", "servers", multiple=True, help="Inference server HOST:PORT (repeat to balance).")
@click.option("--model", "model_dir", help="Score in this process with this model (default: the embedded one).")
@click.option("--learn", "learn_dir", type=click.Path(file_okay=False),
              help="Score in this process in learning mode: learn this traffic's normal, keeping history and models here.")
@click.option("--token-file", type=click.Path(dir_okay=False), help="With --server: bearer token file.")
@click.option("--tls-ca", type=click.Path(dir_okay=False), help="With --server: PEM CA of the server certificate.")
@click.option("--key-attribute", "key_attributes", multiple=True, default=SequencerConfig.key_attributes, show_default=True,
              help="Attribute(s) that key a sequence when a record has no trace id (record, then resource).")
@click.option("--max-lines", type=click.IntRange(1), default=15, show_default=True)
@click.option("--idle-s", type=click.FloatRange(0, min_open=True), default=2.0, show_default=True, help="Close a sequence after this long without lines.")
@click.option("--spool", "spool_dir", default=".logllm-spool", show_default=True, type=click.Path(file_okay=False),
              help="Durable queue directory: requests are fsynced here before Export is answered.")
@click.option("--spool-max-mb", type=click.IntRange(1), default=256, show_default=True)
@click.option("--metrics-port", type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics (spool size, records, failures) at http://HOST:PORT/metrics.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option("--threads", type=click.IntRange(1, 256), help="With --model: torch threads (default: all cores).")
def bridge_cmd(listen, listen_http, forward, servers, model_dir, learn_dir, token_file, tls_ca, key_attributes, max_lines, idle_s,
               spool_dir, spool_max_mb, metrics_port, metrics_host, threads):
    """Receive OTLP logs, annotate them with verdicts, forward them; nothing lost across restarts."""
    def work():
        from collectors.otel.bridge import OtlpBridge
        from collectors.scoring import local_scorer, remote_scorer
        from collectors.otel.spool import SpoolWriteError

        if sum(map(bool, (servers, model_dir, learn_dir))) > 1:
            raise click.UsageError("--server, --model and --learn exclude each other")
        token = read_token_file(token_file)
        if learn_dir:
            from logllm_plugin.learning.learner import LearningDetector

            scorer = local_scorer(detector=LearningDetector.open(learn_dir, threads=threads), threads=threads)
        elif servers:
            scorer = remote_scorer(list(servers), token=token, tls_ca=tls_ca)
        else:
            scorer = local_scorer(model_dir, threads=threads)
        use_json_logs()
        try:
            sequencer = SequencerConfig(max_lines=max_lines, idle_s=idle_s, key_attributes=tuple(key_attributes))
            bridge = OtlpBridge(listen=listen, forward=forward, scorer=scorer, spool_dir=spool_dir, sequencer=sequencer,
                                spool_max_bytes=spool_max_mb << 20, http_listen=listen_http).start()
        except SpoolWriteError as exc:  # read-only or full disk: say so, no traceback
            raise click.ClickException(str(exc)) from None
        if metrics_port is not None:
            port = bridge.metrics.serve(metrics_host, metrics_port)
            logging.getLogger("collectors.otel.bridge").info(
                "bridge metrics", extra={"url": f"http://{metrics_host}:{port}/metrics"})
        import signal
        import threading

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(0.5):
            pass
        bridge.stop()

    run(work)
