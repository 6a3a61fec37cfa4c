"""The result store: images kept as objects for a retention period and handed out as
links, instead of bytes through the call.

Two backends behind one face (:class:`ResultStore`): a local directory served by
the gateway's own link port with HMAC-signed, expiring links (the default: a
single replica needs nothing), or any S3-compatible service with presigned URLs
(:mod:`.s3`, through obstore). Expired objects are deleted by a sweeper, one
replica at a time (:mod:`.retention`); what each client holds is reported to a
ledger (:mod:`.ledger`) for storage quotas.

Public API: :func:`open_store` (the configured store, started), :class:`ResultStore`
(``put``, ``store_image``, ``link``, ``open``, ``stat``, ``delete``, ``sweep``),
:class:`CallInfo`, :class:`StoredObject`, :class:`StoredImage`, :class:`Link`,
the ledger (:class:`StorageLedger`, :class:`Holding`; :class:`MemoryLedger` in this
process, :class:`LocalLedger` in the local database with its :data:`SCHEMA`,
:class:`RedisLedger` on Redis), the
sweep's lease (:class:`SweepLock`, :class:`InProcessLock`, :class:`RedisLock`) and
the observer seams (:class:`StoreObserver`, :class:`StoreTracer`). Failures are
:class:`~imagegate_server.errors.StoreUnavailable`.
"""

from imagegate_server.store.factory import RunningStore, ledger_for, open_store
from imagegate_server.store.ledger import Holding, MemoryLedger, StorageLedger
from imagegate_server.store.ledger_local import SCHEMA, LocalLedger
from imagegate_server.store.ledger_redis import RedisLedger
from imagegate_server.store.objects import CallInfo, Link, StoredImage, StoredObject
from imagegate_server.store.observe import StoreObserver, StoreSpan, StoreTracer
from imagegate_server.store.results import ResultStore, StoredReader, StoreLimits, SweepResult
from imagegate_server.store.retention import InProcessLock, RedisLock, Sweeper, SweepLock

__all__ = [
    "SCHEMA",
    "CallInfo",
    "Holding",
    "InProcessLock",
    "Link",
    "LocalLedger",
    "MemoryLedger",
    "RedisLedger",
    "RedisLock",
    "ResultStore",
    "RunningStore",
    "StorageLedger",
    "StoreLimits",
    "StoreObserver",
    "StoreSpan",
    "StoreTracer",
    "StoredImage",
    "StoredObject",
    "StoredReader",
    "SweepLock",
    "SweepResult",
    "Sweeper",
    "ledger_for",
    "open_store",
]
