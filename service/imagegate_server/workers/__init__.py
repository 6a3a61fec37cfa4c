"""``imagegate serve --workers N|auto``: N gateway processes on one port.

gRPC servers must not be forked once started, so the supervisor
(:mod:`.supervisor`) holds no gRPC objects at all: it reserves the port, starts
each worker as a fresh interpreter (:mod:`.worker`), each of which builds its own
event loop, gRPC server and upstream client and binds the shared port with
SO_REUSEPORT. The kernel then spreads *connections* (not calls) over the workers.
In emulator mode one emulator process (:mod:`.emulator`) serves every worker.
Each child is kept running, restarted if it dies while serving, by :mod:`.children`.
"""

from imagegate_server.workers.children import worker_count
from imagegate_server.workers.supervisor import Supervisor

__all__ = ["Supervisor", "worker_count"]
