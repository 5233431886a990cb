"""Observability shared by every process: Prometheus metrics (and the workers' metrics HTTP server) and the
logging set-up with secret redaction. Kept out of the pure domain (``incident/``), which serves nothing."""
