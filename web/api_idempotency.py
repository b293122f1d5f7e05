"""Idempotent creation: a dispatch system that retries a POST gets the action it already made.

The key (the `Idempotency-Key` header, else the body's `external_id`) maps to the action id in
Redis for 24 hours. Redis rather than a table: the mapping expires by itself, `SET NX` claims
a key atomically so two concurrent retries cannot both create, and it needs no migration. Its
durability is that of the queues, which live in the same Redis.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import redis

from web.api_contract import ApiError

TTL_SECONDS = 24 * 3600
#: How long a claim lasts when its request dies before finishing (a crash, a kill).
PENDING_SECONDS = 60
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def fingerprint(body: Any) -> str:
    """The same JSON body, whatever its key order or spacing, gives the same fingerprint."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Idempotency:
    """One key of one organisation: claim it, then complete it with the action or release it."""

    def __init__(self, client: redis.Redis, organisation_id: int, key: str, body: Any) -> None:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        self.client = client
        self.redis_key = f"api:idempotency:{organisation_id}:{digest}"
        self.fingerprint = fingerprint(body)
        self.pending = json.dumps({"state": "pending", "fingerprint": self.fingerprint,
                                   "owner": uuid.uuid4().hex})

    def claim(self) -> int | None:
        """The id of the action an earlier request with this key made, or None when this
        request now holds the key and must create the action."""
        for _attempt in range(3):
            if self.client.set(self.redis_key, self.pending, nx=True, ex=PENDING_SECONDS):
                return None
            stored = self.client.get(self.redis_key)
            if stored is None:
                continue  # it expired between the two calls
            earlier = json.loads(stored)
            if earlier["fingerprint"] != self.fingerprint:
                raise ApiError(422, "idempotency_key_reused",
                               "Deze idempotentiesleutel hoort bij een ander verzoek.")
            if earlier["state"] == "pending":
                raise ApiError(409, "idempotency_in_progress",
                               "Een verzoek met deze idempotentiesleutel loopt nog; "
                               "probeer het zo opnieuw.", headers={"Retry-After": "1"})
            return int(earlier["action_id"])
        raise ApiError(409, "idempotency_in_progress",
                       "Een verzoek met deze idempotentiesleutel loopt nog; "
                       "probeer het zo opnieuw.", headers={"Retry-After": "1"})

    def complete(self, action_id: int) -> None:
        """Remember ACTION_ID for this key for TTL_SECONDS."""
        self.client.set(self.redis_key, json.dumps({"state": "done", "action_id": action_id,
                                                    "fingerprint": self.fingerprint}),
                        ex=TTL_SECONDS)

    def release(self) -> None:
        """Give the key up after a failure, so a corrected retry may use it (only our claim)."""
        self.client.eval(_RELEASE, 1, self.redis_key, self.pending)
