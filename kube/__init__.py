"""The Kubernetes adapter layer: API access (``client``), the assessment's checks and their runner (``assessor``),
the risky actions (``actions``: one executor per kind) and running them as the requester's identity (``impersonation``).

Depends on the pure core (``incident``) and on the kubernetes client; nothing in ``incident`` imports it.
"""
