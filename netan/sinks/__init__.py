"""Output sinks: JSONL, Zeek-format logs, HTML report. Each renders one schema."""
