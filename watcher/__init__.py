"""The watcher: turns Kubernetes events into reconcile keys on the work queue.

Lists and watches the operator's custom resources and the children it owns (``sources``,
through the one Kubernetes adapter ``kube``), maps every event to a key (``mapping``), and
offers it to the work queue's dedupe (``enqueue``); the dispatcher (``dispatch``) hands keys
to Celery a window at a time, fairly between namespaces. Leader-elected on a Lease
(``leader``), so extra replicas are warm standbys; the leader also pumps requeue-after keys
(``pump``) and resyncs every key periodically and after each relist (``resync``). ``main``
wires it together (``python -m watcher``); ``settings`` reads its environment.

The watcher is not the only producer: workers enqueue follow-ups and woken dependents
through the same work queue. It stands on the shared core (``tango_operator``) only — no
reconcile code, no Jinja2, no PyTango in its image.
"""
