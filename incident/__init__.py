"""The pure domain core of k8s-incident-bot.

Incident state machine, timeline entries, verdict rules from the runbook, the action
serialization lock, schedules and the one settings object. Nothing in this package imports
Slack or the Kubernetes client; ``bot/`` and ``workers/`` depend on it, never the reverse.
"""
