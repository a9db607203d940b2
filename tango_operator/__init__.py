"""The shared core of tango-operator: what the watcher and the workers both stand on.

Neither ``watcher`` nor ``workers`` imports the other; both import this package, which
imports neither (enforced by the import contracts in ``pyproject.toml``). What is here:

- ``keys`` — the reconcile key; ``messages`` — the Celery task, queue, priorities and the
  ``Publisher`` that sends them; ``celeryconfig`` / ``celery_app`` — the one Celery
  configuration every process loads; ``redis_url`` — the Redis URL from the environment;
- ``crd`` — the custom resources' API (group, kinds) and spec parsing; ``names`` — child
  names; ``resources`` — the table of REST paths; ``errors`` — temporary vs permanent;
- ``environment`` — the one reader of environment variables;
- ``workqueue`` — the Redis work queue (dedupe, leases, backoff, delays, fair lanes);
- ``cli`` and ``supervise`` — the ``tango-operator`` command and its worker supervisor.

The route of one key through all of it is ``docs/architecture.md``.
"""
