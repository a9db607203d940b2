"""Business logic of the operator: one reconciler per kind, no Celery, no I/O of its own.

Called from the task layer with a key and the ports (Kubernetes, TANGO, the dependency
index); each reconciler reads the world through them, decides, writes through them and
returns an Outcome that tells the queue when to look again.
"""
