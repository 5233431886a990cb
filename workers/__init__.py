"""RQ job entry points: everything that talks to the cluster or takes longer than Slack's 3 s.

Each module is one kind of job (``assess``, ``actions``, ``schedule``, ``postmortem``) and exposes
plain functions that RQ enqueues by import path. Jobs call the core (``incident``), the Kubernetes
adapters (``kube``) and the Slack chokepoint (``chat``).
"""
