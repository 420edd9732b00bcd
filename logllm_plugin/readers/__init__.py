"""Input readers: log files (or stdin) into `LogRecord`s and `LogSequence`s.

Four formats, sniffed from the first non-empty lines (`detect_format`):
  sequence_jsonl  one sequence a line: {"id", "lines": [...], "label", ...}
  sequence_json   a JSON array of such objects (seed data: sequence_id / log_entries / label, or
                  the seed's fine-tuning items: prompt / input / output)
  record_jsonl    one record a line: {"line" | "message" | "body" | "msg": str, ...}
  text            one record a line, optionally parsed by a regex

These files come from the wild, so no line is lost silently and bad input never ends in a
traceback. Files are read as bytes and decoded per line (errors="replace"): one bad byte costs one
character, not the file. Only empty lines and malformed JSON are skipped, both counted in the
`ReadReport` the caller may pass in. Fatal problems raise `InputError` with a user-ready message:
missing file, unknown format or bad regex when the reader is called; "contains no log lines" from
the generator itself at the end of iteration, so no caller can forget that check.

Modules: `source` (lines, decoding, the report), `sniffing` (which format), `fields` (labels,
timestamps, field names), `sequence_files`, `record_files`, `loghub_csv`.
"""
from logllm_plugin.readers.fields import loghub_label, parse_label, parse_timestamp
from logllm_plugin.readers.loghub_csv import is_structured_csv, read_structured_csv
from logllm_plugin.readers.record_files import read_records
from logllm_plugin.readers.sequence_files import read_sequence_file
from logllm_plugin.readers.sniffing import FORMATS, RECORD_FORMATS, SEQUENCE_FORMATS, detect_format
from logllm_plugin.readers.source import DEFAULT_MAX_LINE_CHARS, InputError, PathLike, ReadReport, dumps_json, loads_json

__all__ = ["DEFAULT_MAX_LINE_CHARS", "FORMATS", "InputError", "PathLike", "RECORD_FORMATS", "ReadReport",
           "SEQUENCE_FORMATS", "detect_format", "dumps_json", "is_structured_csv", "loads_json", "loghub_label",
           "parse_label", "parse_timestamp", "read_records", "read_sequence_file", "read_structured_csv"]
