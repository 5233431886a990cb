"""Persistence: everything kept in Redis — the key names, the stores, the timeline stream, the action queue and
its fenced lock, and all of their Lua (:mod:`persistence.lua`).

The pure domain (``incident/``) never imports this package; the service layer does.
"""
