"""Playing Slack toward the bot: people typing commands, clicking, submitting, posting, reacting.

:class:`Interactions` is mixed into :class:`~sandbox.slack.emulator.SlackEmulator`. Each action
first changes the workspace the way the person's action would (a posted message is in history
before its event is delivered) and then sends what Slack would send, signed, to the bot.
Events are delivered only for channels the bot is a member of, and never for the bot's own
API activity.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

from sandbox.slack import payloads
from sandbox.slack.client import BotClient, Response, Transport
from sandbox.slack.errors import EmulatorError, UnknownObjectError
from sandbox.slack.model import Channel, ts_key
from sandbox.slack.responses import apply_command_ack, apply_view_ack
from sandbox.slack.state import Workspace


class Interactions:
    """Slack-side actions; needs ``workspace``, ``client``, ``transport`` and ``verification_token``.

    ``client`` is the HTTP side (Request URL, signing); ``transport`` is whichever way requests reach
    the bot now: ``client`` itself, or the Socket Mode transport while Socket Mode is on.
    """

    workspace: Workspace
    client: BotClient
    verification_token: str
    events_sent: list[tuple[str, dict[str, Any]]]
    """Every event delivered (``event_id``, event), first deliveries and retries, in order."""

    @property
    def transport(self) -> Transport:
        """How requests reach the bot right now (HTTP unless Socket Mode is on)."""
        return self.client

    # --- interactivity -------------------------------------------------------------------------
    def slash_command(self, user_id: str, channel_id: str, text: str, command: str = "/k8s", *,
                      timestamp: int | None = None, bad_signature: bool = False) -> Response:
        """``user_id`` types ``command text`` in ``channel_id`` (an unknown channel is created)."""
        ws = self.workspace
        user = ws.require_user(user_id)
        channel = ws.channel(channel_id) or ws.add_channel(channel_id, name=channel_id.lower(), creator=user_id)
        response_url = ws.issue_response_url("commands", channel=channel.id, user=user_id)
        form = payloads.slash_command(ws, self.verification_token, user, channel, text, command, response_url,
                                      ws.issue_trigger(user_id))
        transport = self.transport
        response = transport.command(form, timestamp=timestamp, bad_signature=bad_signature)
        apply_command_ack(ws, response, channel=channel.id, user=user_id, deadline=transport.ack_deadline_seconds)
        return response

    def click_button(self, user_id: str, channel_id: str, message_ts: str, action_id: str, value: str | None = None,
                     block_id: str | None = None, *, timestamp: int | None = None,
                     bad_signature: bool = False) -> Response:
        """``user_id`` clicks the element ``action_id`` on a message (or an ephemeral message).

        The element must be on the message, as only a rendered element can be clicked; ``value``,
        when given, must be the element's value. ``block_id`` picks among equal ``action_id``s.
        """
        ws = self.workspace
        user = ws.require_user(user_id)
        channel = ws.require_channel(channel_id)
        message, is_ephemeral = self._clicked_message(channel, user_id, message_ts)
        found_block, element = _find_element(message.get("blocks") or [], action_id, block_id)
        if value is not None and element.get("value") not in (None, value):
            raise EmulatorError(f"element {action_id!r} carries value {element.get('value')!r}, not {value!r}")
        action = {"action_id": action_id, "block_id": found_block, "type": element.get("type", "button"),
                  "action_ts": f"{time.time():.6f}"}
        if "text" in element:
            action["text"] = element["text"]
        if value is not None or "value" in element:
            action["value"] = element.get("value", value)
        response_url = ws.issue_response_url("actions", channel=channel.id, user=user_id, message_ts=message_ts,
                                             original_is_ephemeral=is_ephemeral)
        payload = payloads.block_actions(ws, self.verification_token, user, channel, message,
                                         is_ephemeral=is_ephemeral, action=action, response_url=response_url,
                                         trigger_id=ws.issue_trigger(user_id))
        return self._send_interaction("block_actions", payload, timestamp, bad_signature)

    def submit_view(self, user_id: str, view_callback_id: str, values: dict[str, Any],
                    private_metadata: str | None = None, *, timestamp: int | None = None,
                    bad_signature: bool = False) -> Response:
        """``user_id`` submits their open modal whose ``callback_id`` is ``view_callback_id``.

        ``values`` is ``state.values``: ``{block_id: {action_id: {...}}}``; a plain string as the
        innermost value is wrapped as ``{"type": <element type>, "value": text}``.
        ``private_metadata`` overrides the view's own (default: keep the view's).
        """
        ws = self.workspace
        user = ws.require_user(user_id)
        with ws.lock:
            candidates = [v for v in ws.views.values() if v.user == user_id and v.is_open
                          and v.callback_id == view_callback_id]
        if not candidates:
            raise UnknownObjectError(f"{user_id} has no open view with callback_id {view_callback_id!r}; "
                                     "the bot must open it with views.open first")
        view = candidates[-1]
        state = _normalise_values(view.definition.get("blocks", []), values)
        payload = payloads.view_submission(ws, self.verification_token, user, view, state, private_metadata,
                                           ws.issue_trigger(user_id))
        response = self._send_interaction("view_submission", payload, timestamp, bad_signature)
        apply_view_ack(ws, view, response)
        return response

    def _send_interaction(self, kind: str, payload: dict[str, Any], timestamp: int | None,
                          bad_signature: bool) -> Response:
        return self.transport.interaction(kind, payload, timestamp=timestamp, bad_signature=bad_signature)

    def _clicked_message(self, channel: Channel, user_id: str, ts: str) -> tuple[dict[str, Any], bool]:
        ws = self.workspace
        with ws.lock:
            message = ws.message(channel.id, ts)
            if message is not None:
                return message.to_api(), False
            for entry in ws.ephemeral:
                if entry.get("ts") == ts and entry.get("user") == user_id and entry.get("channel") == channel.id:
                    rendered = {"type": "message", "ts": ts, "text": entry.get("text", ""), "user": ws.bot_user_id,
                                "bot_id": ws.bot_id, "blocks": entry.get("blocks") or []}
                    return rendered, True
        raise UnknownObjectError(f"no message {ts!r} visible to {user_id} in {channel.id}")

    # --- Events API ----------------------------------------------------------------------------
    def send_event(self, event: dict[str, Any], retry_num: int | None = None, event_id: str | None = None,
                   retry_reason: str | None = None) -> Response:
        """Deliver ``event`` in an ``event_callback`` envelope (a retry when ``retry_num`` is set; the
        reason defaults to the transport's own: ``http_timeout`` over HTTP, ``timeout`` over Socket Mode)."""
        event_id = event_id or self.workspace.new_id("Ev")
        envelope = payloads.event_callback(self.workspace, self.verification_token, event, event_id)
        self.events_sent.append((event_id, event))
        return self.transport.event(envelope, event_id=event_id, retry_num=retry_num,
                                    retry_reason=retry_reason if retry_num is not None else None)

    def url_verification(self) -> Response:
        """Send the Request URL handshake; a correct bot echoes ``challenge``."""
        body = payloads.url_verification(self.verification_token, secrets.token_urlsafe(24))
        return self.client.send("url_verification", json.dumps(body).encode(), "application/json")

    def _deliver(self, channel: Channel, event: dict[str, Any], deliver: bool) -> Response | None:
        if not deliver or self.workspace.bot_user_id not in channel.members or not self.transport.reachable():
            return None
        return self.send_event(event)

    def post_message_as_user(self, user_id: str, channel_id: str, text: str, thread_ts: str | None = None,
                             deliver: bool = True, blocks: list[dict[str, Any]] | None = None) -> str:
        """``user_id`` posts; stored in history, and its ``message`` event sent unless ``deliver=False``."""
        ws = self.workspace
        ws.require_user(user_id)
        channel = ws.require_channel(channel_id)
        if thread_ts is not None:
            ws.require_message(channel_id, thread_ts)
        message = ws.post(channel.id, user_id, text, blocks=blocks, thread_ts=thread_ts,
                          extra={"client_msg_id": str(uuid.uuid4())})
        self._deliver(channel, payloads.message_event(message, channel), deliver)
        return message.ts

    def edit_message_as_user(self, user_id: str, channel_id: str, ts: str, text: str,
                             deliver: bool = True) -> Response | None:
        """``user_id`` edits their message; sends ``message_changed``."""
        ws = self.workspace
        channel = ws.require_channel(channel_id)
        with ws.lock:
            message = ws.require_message(channel_id, ts)
            if message.user != user_id:
                raise EmulatorError(f"{user_id} cannot edit {message.user}'s message {ts}")
            previous = message.to_api()
            event_ts = ws.clock.next()
            message.text = text
            message.edited = {"user": user_id, "ts": event_ts}
            current = message.to_api()
        event = {"type": "message", "subtype": "message_changed", "hidden": True, "channel": channel.id,
                 "ts": event_ts, "event_ts": event_ts, "message": current, "previous_message": previous,
                 "channel_type": "group" if channel.is_private else "channel"}
        return self._deliver(channel, event, deliver)

    def delete_message_as_user(self, user_id: str, channel_id: str, ts: str, deliver: bool = True) -> Response | None:
        """``user_id`` deletes their message; sends ``message_deleted``."""
        ws = self.workspace
        channel = ws.require_channel(channel_id)
        with ws.lock:
            message = ws.require_message(channel_id, ts)
            if message.user != user_id:
                raise EmulatorError(f"{user_id} cannot delete {message.user}'s message {ts}")
            previous = ws.delete(channel_id, ts).to_api()
            event_ts = ws.clock.next()
        event = {"type": "message", "subtype": "message_deleted", "hidden": True, "channel": channel.id,
                 "ts": event_ts, "event_ts": event_ts, "deleted_ts": ts, "previous_message": previous,
                 "channel_type": "group" if channel.is_private else "channel"}
        return self._deliver(channel, event, deliver)

    def add_reaction(self, user_id: str, channel_id: str, ts: str, name: str, deliver: bool = True) -> Response | None:
        """``user_id`` reacts with ``:name:``; sends ``reaction_added``."""
        ws = self.workspace
        ws.require_user(user_id)
        channel = ws.require_channel(channel_id)
        with ws.lock:
            message = ws.require_message(channel_id, ts)
            users = message.reactions.setdefault(name, [])
            if user_id not in users:
                users.append(user_id)
            event_ts = ws.clock.next()
        event = {"type": "reaction_added", "user": user_id, "reaction": name, "item_user": message.user,
                 "item": {"type": "message", "channel": channel.id, "ts": ts}, "event_ts": event_ts}
        return self._deliver(channel, event, deliver)

    def pin_message_as_user(self, user_id: str, channel_id: str, ts: str, deliver: bool = True) -> Response | None:
        """``user_id`` pins a message; sends ``pin_added``."""
        ws = self.workspace
        ws.require_user(user_id)
        channel = ws.require_channel(channel_id)
        with ws.lock:
            message = ws.require_message(channel_id, ts)
            if not message.pinned:
                message.pinned = True
                channel.pins.append(ts)
            event_ts = ws.clock.next()
            item = {"type": "message", "created": int(time.time()), "created_by": user_id, "channel": channel.id,
                    "message": message.to_api()}
        event = {"type": "pin_added", "user": user_id, "channel_id": channel.id, "item": item,
                 "item_user": message.user, "pin_count": len(channel.pins),
                 "pinned_info": {"channel": channel.id, "pinned_by": user_id, "pinned_ts": int(ts_key(event_ts)[0])},
                 "event_ts": event_ts}
        return self._deliver(channel, event, deliver)


def _find_element(blocks: list[dict[str, Any]], action_id: str,
                  block_id: str | None) -> tuple[str, dict[str, Any]]:
    """The interactive element ``action_id`` in ``blocks`` and its block's ``block_id``."""
    for index, block in enumerate(blocks):
        found_block = str(block.get("block_id") or f"emu-block-{index}")
        if block_id is not None and found_block != block_id:
            continue
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        for candidate in (*elements, block.get("accessory")):
            if isinstance(candidate, dict) and candidate.get("action_id") == action_id:
                return found_block, candidate
    raise UnknownObjectError(f"no element with action_id {action_id!r} on that message")


def _normalise_values(blocks: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    types = {(b.get("block_id"), (b.get("element") or {}).get("action_id")): (b.get("element") or {}).get("type")
             for b in blocks if isinstance(b, dict)}
    state: dict[str, Any] = {}
    for block_id, actions in values.items():
        state[block_id] = {}
        for action_id, value in actions.items():
            if isinstance(value, dict):
                state[block_id][action_id] = value
            else:
                kind = types.get((block_id, action_id)) or "plain_text_input"
                state[block_id][action_id] = {"type": kind, "value": value}
    return state
