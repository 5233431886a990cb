"""Low-level Slack building blocks shared by ``bot/`` and ``workers/``.

The single chokepoint for Web API calls (``client``), Block Kit view builders and mrkdwn
escaping. It knows Slack, not incidents' rules.
"""
