"""`logllm-plugin es setup|annotate|backfill|feedback`: the Elasticsearch / OpenSearch integration (DESIGN §5).

Credentials only from the environment: LOGLLM_ES_API_KEY, or LOGLLM_ES_USERNAME + LOGLLM_ES_PASSWORD;
LOGLLM_ES_CA_CERT (or --ca-cert) for a private CA. They are never printed or logged.
"""
from __future__ import annotations

import json
import signal
import sys
import time

import click

from logllm_plugin.cli.common import integration_scorer, load_config, read_token_file, run, server_errors


def cluster_options(fn):
    fn = click.option("--ca-cert", type=click.Path(dir_okay=False, exists=True),
                      help="PEM CA for https (default: $LOGLLM_ES_CA_CERT, else the system CAs).")(fn)
    fn = click.option("--backend", type=click.Choice(["auto", "elasticsearch", "opensearch"]), default="auto",
                      show_default=True, help="Client library; auto asks the cluster.")(fn)
    fn = click.option("--index", "index", required=True, help="Index pattern, e.g. logs-*.")(fn)
    fn = click.option("--url", required=True, help="Cluster URL, e.g. http://127.0.0.1:9200.")(fn)
    return fn


def scoring_options(fn):
    fn = click.option("--tls-ca", type=click.Path(dir_okay=False), help="With --server: PEM CA of the server.")(fn)
    fn = click.option("--token-file", type=click.Path(dir_okay=False), help="With --server: bearer token file.")(fn)
    fn = click.option("--server", "servers", multiple=True, help="Score on inference server(s) HOST:PORT.")(fn)
    fn = click.option("--model", "model_dir", help="Score in this process with this model (default: embedded).")(fn)
    return fn


def annotate_options(fn):
    fn = click.option("--threads", type=click.IntRange(1, 256), help="Local model: torch threads (on a small machine "
                      "that also runs the cluster, 1 can be several times faster).")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="Print the run's counters as JSON on the last line.")(fn)
    fn = click.option("--no-explain", is_flag=True, help="Do not write explanations for anomalous sequences.")(fn)
    fn = click.option("--batch", "score_batch", type=click.IntRange(1), default=256, show_default=True,
                      help="Sequences per scoring call and bulk request.")(fn)
    fn = click.option("--page-size", type=click.IntRange(1), default=1000, show_default=True, help="Documents per search page.")(fn)
    fn = click.option("--idle-s", type=click.FloatRange(0, min_open=True), default=2.0, show_default=True,
                      help="Close a sequence after this long (event time) without lines.")(fn)
    fn = click.option("--max-lines", type=click.IntRange(1), default=15, show_default=True, help="Close a sequence at this many lines.")(fn)
    fn = click.option("--message-field", default="message", show_default=True)(fn)
    fn = click.option("--time-field", help="Tailing field (default: event.ingested when present, else @timestamp).")(fn)
    fn = click.option("--key-field", "key_fields", multiple=True, default=("service.name", "host.name"),
                      show_default=True, help="Field(s) whose values key a sequence (repeat), e.g. trace_id.")(fn)
    return fn


def _client(url, backend, ca_cert):
    from collectors.elastic.connection import connect

    return connect(url, backend=backend, ca_certs=ca_cert)


def _explainer(detector, no_explain):
    if no_explain:
        return None
    from logllm_plugin.analyzers.service import AnalysisService

    return AnalysisService(signature=detector.store_ids if detector is not None else None)


def _cluster_errors():
    from collectors.elastic.annotator import AnnotateError
    from collectors.elastic.connection import ClusterError

    return (ClusterError, AnnotateError, ValueError)


def _guard(fn):
    try:
        return fn()
    except _cluster_errors() as exc:
        raise click.ClickException(str(exc)) from None


@click.group("es")
def es() -> None:
    """Elasticsearch / OpenSearch: mappings and pipeline, annotate new documents, backfill history."""


@es.command("setup")
@cluster_options
@click.option("--key-field", "key_fields", multiple=True, help="Field(s) the pipeline joins into logllm.sequence.key.")
@click.option("--priority", type=click.IntRange(0), default=200, show_default=True, help="Priority of the index template.")
def setup_cmd(url, index, backend, ca_cert, key_fields, priority):
    """Install the logllm.* mappings, the ingest pipeline (where the cluster has ingest) and the state index."""
    def work():
        from collectors.elastic.setup import setup_cluster

        client = _client(url, backend, ca_cert)
        report = setup_cluster(client, index, key_fields=key_fields, priority=priority)
        click.echo(f"{client.backend} at {url}:")
        for line in report.lines():
            click.echo(f"  {line}")

    run(lambda: _guard(work))


@es.command("annotate")
@cluster_options
@scoring_options
@annotate_options
@click.option("--once", is_flag=True, help="Annotate what is pending, then exit (default: follow new documents).")
@click.option("--lateness-s", type=click.FloatRange(0), default=300.0, show_default=True,
              help="Re-read this far behind the checkpoint for late documents.")
@click.option("--poll-s", type=click.FloatRange(0, min_open=True), default=2.0, show_default=True, help="Following: pause between passes.")
@click.option("--checkpoint", "checkpoint_name", help="Checkpoint name in the state index (default: the pattern).")
@click.option("--partition", help="I/N: this annotator takes the keys with crc32(key) %% N == I (run N of them).")
@click.option("--learn", "learn_dir", type=click.Path(file_okay=False),
              help="Learning mode: learn this index's normal (first from its own history), keep history and models here.")
def annotate_cmd(url, index, backend, ca_cert, model_dir, servers, token_file, tls_ca, key_fields, time_field,
                 message_field, max_lines, idle_s, page_size, score_batch, no_explain, as_json, once, lateness_s,
                 poll_s, checkpoint_name, partition, threads, learn_dir):
    """Score new documents by sequence and write logllm.* annotations back (bulk partial updates)."""
    def work():
        from collectors.elastic.annotator import Annotator, AnnotatorConfig
        from logllm_plugin.sequencer import SequencerConfig

        client = _client(url, backend, ca_cert)
        sequencer = SequencerConfig(max_lines=max_lines, idle_s=idle_s)
        if learn_dir:
            score, detector = _learning_scorer(learn_dir, model_dir, servers, threads, client, index, key_fields,
                                               message_field, time_field, sequencer)
        else:
            score, detector = integration_scorer(model_dir, servers, token_file, tls_ca, threads)
        config = AnnotatorConfig(index=index, key_fields=key_fields, message_field=message_field,
                                 time_field=time_field, lateness_s=lateness_s, page_size=page_size,
                                 score_batch=score_batch, checkpoint_name=checkpoint_name,
                                 partition=_partition(partition), sequencer=sequencer)
        annotator = Annotator(client, score, config, explainer=_explainer(detector, no_explain))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: annotator.stop_event.set())
        started = time.monotonic()
        stats = annotator.run_once() if once else annotator.follow(poll_s)
        _report(stats, time.monotonic() - started, as_json)

    run(lambda: _guard(work))


def _learning_scorer(learn_dir, model_dir, servers, threads, client, index, key_fields, message_field, time_field,
                     sequencer):
    from collectors.elastic.learning import bootstrap_learner
    from collectors.scoring import local_scorer
    from logllm_plugin.learning.learner import LearningDetector

    if model_dir or servers:
        raise click.UsageError("--learn scores with the models it learns: it takes no --model or --server")
    learner = LearningDetector.open(learn_dir, threads=threads)
    outcome = bootstrap_learner(learner, client, index=index, key_fields=tuple(key_fields),
                                message_field=message_field, time_field=time_field, sequencer=sequencer)
    click.echo(f"learning: {json.dumps(outcome)}", err=True)
    return local_scorer(detector=learner), learner


@es.command("feedback")
@cluster_options
@click.option("--query", required=True, help="Which documents: a query string (e.g. 'logllm.sequence.id:\"web#a1\"' "
              "or '_id:(a1 OR b2)'), or a JSON query DSL object.")
@click.option("--as", "label", required=True, type=click.Choice(["normal", "anomalous"]), help="What they really are.")
@click.option("--server", help="A learning server HOST:PORT (serve --learn) to send the correction to.")
@click.option("--learn", "learn_dir", type=click.Path(file_okay=False),
              help="Or a learner's DIR (serve --learn / es annotate --learn): its next poll takes the correction.")
@click.option("--token-file", type=click.Path(dir_okay=False), help="With --server: bearer token file.")
@click.option("--tls-ca", type=click.Path(dir_okay=False), help="With --server: PEM CA of the server.")
@click.option("--timeout-s", type=click.FloatRange(min=0.001), default=30.0, show_default=True)
@click.option("--message-field", default="message", show_default=True)
@click.option("--max-sequences", type=click.IntRange(1, 10_000), default=1000, show_default=True,
              help="Refuse a query that selects more sequences than this.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True),
              help="With --learn: the learner's YAML config (feedback expiry, masks).")
def feedback_cmd(url, index, backend, ca_cert, query, label, server, learn_dir, token_file, tls_ca, timeout_s,
                 message_field, max_sequences, config_path):
    """Correct verdicts seen in Kibana: the selected documents' sequences, read whole from the index,
    are answered with LABEL at once and train the learner's next model."""
    def work():
        from collectors.elastic.feedback import FeedbackQueryError, id_field, lines_of_sequences, parse_query, sequence_ids

        if bool(server) == bool(learn_dir):
            raise click.UsageError("give one of --server (a learning server) or --learn DIR (a learner's directory)")
        client = _client(url, backend, ca_cert)
        try:
            field = id_field(client, index)
            ids = sequence_ids(client, index, parse_query(query), max_sequences, field)
            sequences = lines_of_sequences(client, index, ids, message_field, field)
        except FeedbackQueryError as exc:
            raise click.ClickException(str(exc)) from None
        if learn_dir:
            from logllm_plugin.learning.feedback import FeedbackError
            from logllm_plugin.learning.versioned import record_feedback

            try:
                stored = record_feedback(learn_dir, load_config(config_path, {}), sequences, label)
            except (FeedbackError, FileNotFoundError) as exc:
                raise click.ClickException(str(exc)) from None
            result = {"accepted": stored, "stored": stored}
        else:
            from logllm_plugin.client import InferenceClient

            token = read_token_file(token_file)
            with server_errors(server), InferenceClient(server, token=token, tls_ca=tls_ca, timeout_s=timeout_s) as c:
                result = c.feedback(sequences, label)
        click.echo(json.dumps({**result, "sequences": ids}))

    run(lambda: _guard(work))


def _partition(text):
    if not text:
        return None
    try:
        mine, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise click.UsageError(f"--partition must be I/N, e.g. 0/2, got {text!r}") from None
    return mine, count


def _report(stats, elapsed_s: float, as_json: bool) -> None:
    rate = stats.docs_annotated / elapsed_s if elapsed_s > 0 else 0.0
    click.echo(f"annotated {stats.docs_annotated} documents in {stats.sequences} sequences "
               f"({stats.anomalous_sequences} anomalous) in {elapsed_s:.1f}s ({rate:.0f} docs/s); "
               f"conflicts {stats.conflicts}, failures {stats.failures}, "
               f"retries {stats.request_retries} requests / {stats.item_retries} items", err=as_json)
    if as_json:
        click.echo(json.dumps({**stats.as_dict(), "elapsed_s": round(elapsed_s, 3), "docs_per_s": round(rate, 1)}))
    if stats.failures:
        sys.exit(3)


@es.command("backfill")
@cluster_options
@scoring_options
@annotate_options
@click.option("--from", "time_from", required=True, help="Start (inclusive): ISO 8601 (UTC if no zone) or epoch ms.")
@click.option("--to", "time_to", required=True, help="End (exclusive): ISO 8601 or epoch ms.")
@click.option("--slices", type=click.IntRange(1), default=1, show_default=True, help="Parallel time slices.")
def backfill_cmd(url, index, backend, ca_cert, model_dir, servers, token_file, tls_ca, key_fields, time_field,
                 message_field, max_lines, idle_s, page_size, score_batch, no_explain, as_json, time_from, time_to,
                 slices, threads):
    """Annotate the documents of a time range not yet annotated, in parallel slices, with a progress bar."""
    def work():
        from tqdm import tqdm

        from collectors.elastic.annotator import Annotator, AnnotatorConfig
        from collectors.elastic.backfill import backfill, parse_time_ms, pending_count
        from logllm_plugin.sequencer import SequencerConfig

        start_ms, end_ms = parse_time_ms(time_from), parse_time_ms(time_to)
        client = _client(url, backend, ca_cert)
        score, detector = integration_scorer(model_dir, servers, token_file, tls_ca, threads)
        config = AnnotatorConfig(index=index, key_fields=key_fields, message_field=message_field,
                                 time_field=time_field, page_size=page_size, score_batch=score_batch,
                                 sequencer=SequencerConfig(max_lines=max_lines, idle_s=idle_s))
        if config.time_field is None:  # one detection for all slices
            config.time_field = Annotator(client, score, config)._detect_time_field()
        total = pending_count(client, config, config.time_field, start_ms, end_ms)
        bar = tqdm(total=total, desc="backfill", unit="doc", file=sys.stderr, disable=not sys.stderr.isatty())
        started = time.monotonic()
        stats = backfill(client, score, config, start_ms, end_ms, slices, explainer=_explainer(detector, no_explain),
                         on_progress=bar.update)
        bar.close()
        _report(stats, time.monotonic() - started, as_json)

    run(lambda: _guard(work))
