"""The Slack surface: the Bolt app, its listeners, the command grammar and request checks.

Listeners parse, authorize, ``ack()``, enqueue and reply; the work itself happens in the core
or in RQ jobs.
"""
