"""The process kit: what every long-running process runs beside its work.

`process` (the entry-point shape and `ProcessOps`), `ops_server` (`/metrics`, `/healthz`, `/readyz`;
`multiprocess_metrics` when the api runs as several processes), `readiness`
(checks), `supervisor` (every background loop), `periodic` (a loop that runs a step every interval), `sampling`
(gauges read from the database now and then; the broker's queue depths: shared/messaging/queue_depth.py),
`group_commit` (many concurrent callers, one commit per batch: placement, the worker's submissions, the webhooks'
ingest and result recording).
"""
