"""Zeek-log source: conn/ssl/x509/dns/http/files logs in, netan flow records out.

Contract: ``read_zeek(paths, problems)`` yields flow records built like
``netan.schema.new_flow_record`` (plus Zeek extras: ``zeek_uid``,
``conn_state``, ``history``, ``missed_bytes``, ``dst_name``, ``http``,
``zeek_logs``, ``not_observable``) from TSV or JSON logs, plain or gzip'd,
found by content in files and directories.  Bad input is reported to the
``Problems`` collector and skipped, never raised.  ``parallel=`` (keyword)
forces or forbids parsing a big conn.log in a child process (default: when
a core is idle).  See docs/zeek.md.

Modules: ``tsv`` (ASCII format), ``jsonlog`` (JSON format), ``discover``
(finding and recognising logs), ``convert`` (the uid join and record
building), ``reader`` (the pipeline, and ``ZeekRead``: the same in steps),
``worker`` (the optional child process that parses a big conn.log while the
parent builds records), ``split`` (conn lines cut into segments),
``fanout`` (segments read by several processes, for ``netan zeek``) and
``lane`` (pass 2 of a plain conn line in one C call, for ``netan zeek``).
Nothing happens at import.
"""
from __future__ import annotations

from netan.sources.zeek.reader import ZeekRead, read_zeek

__all__ = ["read_zeek", "ZeekRead"]
