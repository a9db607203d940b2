"""The watcher: the only producer of reconcile keys.

Lists and watches the operator's custom resources and the children it owns
(``sources``), maps every event to a key (``mapping``), and offers it to the Redis work
queue's dedupe, sending one Celery message per key that needs one (``enqueue``, ``send``).
Leader-elected on a Lease (``leader``), so extra replicas are warm standbys; the leader
also pumps requeue-after keys (``pump``) and resyncs every key periodically and after each
relist (``resync``). ``main`` wires it together (``python -m watcher``).
Imports only ``workers.contract``, ``workers.api`` and ``workers.queue`` from the workers:
no reconcile code, no Jinja2, no PyTango in its image.
"""
