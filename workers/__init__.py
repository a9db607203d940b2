"""The workers: Celery processes that reconcile one key at a time.

``app`` is the Celery app and ``tasks`` its one thin task; ``execution`` runs a key under
the work-queue contract; ``wiring`` builds each process's clients; ``reconcile/`` holds the
business logic (no Celery, no Redis); ``kube`` (Kubernetes) and ``tango`` (PyTango,
dsconfig) are the adapters to the outside; ``rendering`` turns a spec into child
manifests from ``templates/``; ``settings`` reads the environment; ``export_watcher``
wakes dependents when a starting server's devices are exported. The route of one key is
``docs/architecture.md``.
"""
