"""Block Kit checks Slack applies before accepting a message or a view.

Not the whole Block Kit schema: the limits that real bots trip over (block count, text
lengths, duplicate ``block_id``/``action_id``, unknown block types, malformed text objects),
reported the way Slack reports them — ``invalid_blocks`` with ``[ERROR] … [json-pointer:…]``
lines in ``response_metadata.messages``.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any

from sandbox.slack.errors import ApiError

MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100
BLOCK_TYPES: frozenset[str] = frozenset({
    "section", "divider", "image", "actions", "context", "input", "header", "rich_text", "file", "video",
    "markdown", "table", "context_actions",
})
TEXT_TYPES: frozenset[str] = frozenset({"plain_text", "mrkdwn"})


def check_blocks(blocks: Any, *, max_blocks: int = MESSAGE_MAX_BLOCKS) -> list[dict[str, Any]]:
    """``blocks`` if Slack would accept them, else :class:`ApiError` ``invalid_blocks``."""
    if not isinstance(blocks, list):
        raise ApiError("invalid_blocks_format")
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    action_ids: set[str] = set()
    for index, block in enumerate(blocks):
        pointer = f"/blocks/{index}"
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            problems.append(f"unsupported type [json-pointer:{pointer}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > 255:
                problems.append(f"must be less than 256 characters [json-pointer:{pointer}/block_id]")
            elif block_id in block_ids:
                problems.append(f"duplicate block_id [json-pointer:{pointer}/block_id]")
            block_ids.add(str(block_id))
        problems.extend(_check_block(block, pointer, action_ids))
    if problems:
        raise ApiError("invalid_blocks", response_metadata={"messages": [f"[ERROR] {p}" for p in problems]})
    return blocks


def _check_text(obj: Any, pointer: str, max_length: int, *, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in TEXT_TYPES:
        return [f"must provide a text object [json-pointer:{pointer}]"]
    if plain_only and obj.get("type") != "plain_text":
        return [f"must be plain_text [json-pointer:{pointer}/type]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be more than 0 characters [json-pointer:{pointer}/text]"]
    if len(text) > max_length:
        return [f"must be less than {max_length + 1} characters [json-pointer:{pointer}/text]"]
    return []


def _check_block(block: dict[str, Any], pointer: str, action_ids: set[str]) -> list[str]:
    kind = block["type"]
    problems: list[str] = []
    if kind == "header":
        problems += _check_text(block.get("text"), f"{pointer}/text", 150, plain_only=True)
    elif kind == "section":
        if "text" not in block and "fields" not in block:
            problems.append(f"must provide either text or fields [json-pointer:{pointer}]")
        if "text" in block:
            problems += _check_text(block["text"], f"{pointer}/text", 3000)
        fields = block.get("fields", [])
        if len(fields) > 10:
            problems.append(f"no more than 10 items allowed [json-pointer:{pointer}/fields]")
        for i, item in enumerate(fields):
            problems += _check_text(item, f"{pointer}/fields/{i}", 2000)
        if isinstance(block.get("accessory"), dict):
            problems += _check_element(block["accessory"], f"{pointer}/accessory", action_ids)
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
            problems.append(f"must have between 1 and 25 elements [json-pointer:{pointer}/elements]")
        else:
            for i, element in enumerate(elements):
                problems += _check_element(element, f"{pointer}/elements/{i}", action_ids)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            problems.append(f"must have between 1 and 10 elements [json-pointer:{pointer}/elements]")
    elif kind == "input":
        problems += _check_text(block.get("label"), f"{pointer}/label", 2000, plain_only=True)
        if isinstance(block.get("element"), dict):
            problems += _check_element(block["element"], f"{pointer}/element", action_ids)
        else:
            problems.append(f"must provide an element [json-pointer:{pointer}/element]")
    return problems


def _check_element(element: Any, pointer: str, action_ids: set[str]) -> list[str]:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        return [f"must provide an element type [json-pointer:{pointer}/type]"]
    problems: list[str] = []
    action_id = element.get("action_id")
    if action_id is not None:
        if not isinstance(action_id, str) or len(action_id) > 255:
            problems.append(f"must be less than 256 characters [json-pointer:{pointer}/action_id]")
        elif action_id in action_ids:
            problems.append(f"duplicate action_id [json-pointer:{pointer}/action_id]")
        action_ids.add(str(action_id))
    if element["type"] == "button":
        problems += _check_text(element.get("text"), f"{pointer}/text", 75, plain_only=True)
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            problems.append(f"must be less than 2001 characters [json-pointer:{pointer}/value]")
    return problems


def with_block_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of ``blocks`` where each block lacking a ``block_id`` gets a random one, as Slack does."""
    stored = copy.deepcopy(blocks)
    for block in stored:
        block.setdefault("block_id", secrets.token_urlsafe(4))
    return stored
