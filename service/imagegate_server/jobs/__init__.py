"""The jobs stage: long-running image work, idempotent calls, the fair queue.

Between requests and routing (DESIGN.md section 1), only for submitted jobs and
for calls that carry a ``request_id``:

    model, payload     what a job is, as the stores keep it
    fingerprint        what makes a repeated request id "the same request"
    store              the backends' one interface: local_* (SQLite) or redis_*
    runner             each process's runners: claim fairly, admit, run, lease
    housekeeping       the reaper of lapsed leases, the sweep of expired jobs
    admissions, observers   what the runners use of limits, metrics and traces
    execution          one job's request upstream, its result into the store
    service            submit, get, list, wait, cancel, delete; calls run once
    grpc_*, operations_service   the edge: ImageJobsService, google.longrunning

gRPC appears only in the edge modules; everything else is usable from anything.
"""
