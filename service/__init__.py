"""The service layer: what the bot does, between the Slack surface (``bot/``) and the RQ entry points (``workers/``).

One :class:`~service.context.Context` carries the dependencies; :mod:`service.jobs` is the only place
that queues work. The lifecycle, reminders, paging, assessment publishing, actions, resolve and
post-mortem live here, so both surfaces stay thin and never import each other.
"""
