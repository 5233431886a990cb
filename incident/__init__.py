"""The pure domain core of k8s-incident-bot.

Incident state machine, timeline entries, verdict rules from the runbook, the action
serialization lock, schedules, the one settings object, and the observability every layer
shares: Prometheus metrics (``metrics``) and redacted JSON logs (``logging_setup``). Nothing in this package imports Slack or the Kubernetes client;
``chat/``, ``kube/``, ``bot/`` and ``workers/`` depend on it, never the reverse.
"""
