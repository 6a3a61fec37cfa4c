"""Stored delivery at the edge: which calls store their results, whether their caller
may, within its storage quota, for how long, and the caller's own stored images.

    check      before the upstream call (nothing billed yet): ``DELIVERY_STORED``
               needs a client that may store (PERMISSION_DENIED, ErrorInfo
               ``STORE_NOT_ALLOWED``) and room in its quota for the largest answer
               the request can bring, by the model table's bound
               (RESOURCE_EXHAUSTED, QuotaFailure quota_id ``stored_bytes``). For a
               model the table does not know there is no such bound: the call is
               refused only when the client is at its quota already, and its images
               are stored whatever their size (they may take it past the quota; its
               next call is then refused).
    delivery   the call's :class:`StoredDelivery` (the mapping stage stores)
    relink     a fresh link to one of the caller's own stored images; another
               client's object, an expired or unknown one: all None alike

Objects are named by their client (the key's client segment): a client of the
clients file by its name, anonymous calls by none, and a certificate identity that
a key cannot hold (``spiffe://...``, with mTLS and no clients file) by a digest.
Calls in flight at once are each checked against what the client held when they
started, so concurrent calls can together pass the quota by what they store.
"""

from __future__ import annotations

import datetime
import hashlib
import logging

from imagegate.v1 import params_pb2

from imagegate_server.clients import Policy
from imagegate_server.clients.fields import CLIENT_NAME
from imagegate_server.errors import InvalidRequest, LimitRefused, NotPermitted
from imagegate_server.gateway.edge.callers import ANONYMOUS, Caller
from imagegate_server.gateway.mapping.stored import StoredDelivery
from imagegate_server.gateway.requests.draft import Draft
from imagegate_server.models import rules_for
from imagegate_server.settings import Settings
from imagegate_server.store import CallInfo, Holding, ResultStore, StoredImage
from imagegate_server.store.objects import is_key, owner
from imagegate_server.upstream.bounds import answer_bounds
from imagegate_server.wording import plural

log = logging.getLogger(__name__)

STORE_NOT_ALLOWED = "STORE_NOT_ALLOWED"
STORED_BYTES = "stored_bytes"
"""The storage quota's name in QuotaFailure (``quota_id``) and metrics."""
_DELIVERIES = frozenset(params_pb2.Delivery.values())


def store_client(client: str) -> str | None:
    """The client segment of ``client``'s objects (None: anonymous)."""
    if client == ANONYMOUS:
        return None
    if CLIENT_NAME.fullmatch(client):
        return client
    return "id_" + hashlib.sha256(client.encode()).hexdigest()[:32]


class Storage:
    def __init__(self, store: ResultStore, settings: Settings) -> None:
        self._store = store
        self._settings = settings

    async def check(
        self, caller: Caller, draft: Draft, *, default: int = params_pb2.DELIVERY_INLINE
    ) -> bool:
        """Whether the call's results are to be stored (``default``: what an unset
        ``delivery`` means for it); raises when its caller may not store them."""
        delivery = draft.delivery
        if delivery not in _DELIVERIES:
            raise InvalidRequest.one(
                "parameters.delivery", f"{delivery} is not a value of Delivery"
            )
        if (delivery or default) != params_pb2.DELIVERY_STORED:
            return False
        policy, client = caller.policy, caller.client
        if not policy.store_results:
            raise NotPermitted(
                STORE_NOT_ALLOWED,
                f"client '{client}' may not store results; ask for DELIVERY_INLINE",
                {"client": client},
            )
        limit = policy.max_stored_bytes
        if limit is not None:
            held = await self.holding(caller)
            bound = self._largest_answer(draft)
            if held.size >= limit or (bound is not None and held.size + bound > limit):
                raise _over_quota(client, held, limit, bound)
        return True

    def delivery(
        self, caller: Caller, draft: Draft, *, request_id: str, deadline: float
    ) -> StoredDelivery:
        """The stored delivery of a call that :meth:`check` said stores."""
        info = CallInfo(store_client(caller.client), draft.model, request_id)
        return StoredDelivery(
            self._store, info, retention=self.retention(caller.policy), deadline=deadline
        )

    def retention(self, policy: Policy) -> datetime.timedelta:
        settings = self._settings
        wanted = policy.result_retention_s
        seconds = settings.store_retention_s if wanted is None else wanted
        return datetime.timedelta(seconds=min(seconds, settings.store_max_retention_s))

    async def holding(self, caller: Caller) -> Holding:
        """What the caller's client holds, by the ledger; nothing while the ledger
        cannot be read (the quota is then not enforced: logged)."""
        try:
            return await self._store.ledger.holding(store_client(caller.client))
        except Exception as error:
            log.warning("store ledger unreadable", extra={"error": type(error).__name__})
            return Holding()

    async def relink(self, caller: Caller, reference: str) -> StoredImage | None:
        """``reference``'s object with a fresh link, if the caller's client stored it
        and it is still retained; else None, whatever the reason."""
        if not is_key(reference) or owner(reference) != store_client(caller.client):
            return None
        found = await self._store.stat(reference)
        if found is None or found.expires <= datetime.datetime.now(datetime.UTC):
            return None
        return StoredImage(found, await self._store.link(found))

    def _largest_answer(self, draft: Draft) -> int | None:
        """The most bytes the call's images can be (None: no bound is known)."""
        if rules_for(draft.model) is None:
            return None
        bounds = answer_bounds(
            draft.params,
            stream=False,
            unknown_model_bytes=self._settings.upstream_unknown_model_answer_bytes,
        )
        return bounds.images.max_bytes * bounds.final_images


def _over_quota(client: str, held: Holding, limit: int, bound: int | None) -> LimitRefused:
    adds = "" if bound is None else f"; this call's images could add up to {bound} bytes"
    return LimitRefused(
        STORED_BYTES,
        f"client '{client}' holds {held.size} bytes in {plural(held.objects, 'stored result')} "
        f"of its {limit}-byte storage quota{adds}; stored results are deleted as their "
        "retention ends (or ask for DELIVERY_INLINE)",
        client=client,
        retry_after_s=None,
        permanent=bound is not None and bound > limit,
    )
