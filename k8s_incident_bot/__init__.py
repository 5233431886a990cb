"""Composition root of k8s-incident-bot: the ``k8s-incident-bot`` command line."""
