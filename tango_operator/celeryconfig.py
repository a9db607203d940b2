"""Celery settings of every operator process (lower-case names, loaded by ``make_app``).

The workers consume with them, the watcher and the workers publish with them, and Flower
reads the broker with them (``tango_operator.celery_app``); the worker-side settings are
inert in a process that only sends.

Values come from the environment (``TANGO_OPERATOR_REDIS_URL``, ``TANGO_OPERATOR_REDIS_PASSWORD``
and, for a ``rediss://`` URL, ``TANGO_OPERATOR_REDIS_CA_FILE`` / ``_CERT_FILE`` / ``_KEY_FILE``;
see ``tango_operator.redis_url``); everything else is fixed here because the queue contract
(docs/architecture.md, "The queue contract") depends on it: JSON only, late acks with one
message prefetched, redelivery when a worker dies, and no results stored (the state of a
reconcile is in the custom resource's status and in the metrics, not in Celery).

JSON only is also a security boundary (docs/security.md): anyone who can write to the Redis can
make workers reconcile keys of their choosing, but a pickle or YAML message is refused before it
is decoded, so they cannot make a worker run code.
"""

from __future__ import annotations

from tango_operator.messages import BROKER_PRIORITY_OPTIONS, QUEUE_NAME
from tango_operator.redis_url import celery_url, redis_tls, redis_url

# TANGO_OPERATOR_REDIS_URL (+ _REDIS_PASSWORD, + the TLS files), in kombu's spelling
broker_url = celery_url(redis_url())
# kombu reads the TLS options from the rediss:// URL's query as well; Flower's broker page
# (flower.utils.broker.RedisSsl) reads only this. False: no TLS.
broker_use_ssl = redis_tls() or False
broker_connection_retry_on_startup = True
# A reconcile lasts seconds; nothing is ever scheduled with an ETA or countdown (delays live
# in the work queue's Redis sorted set), and one message at most waits prefetched behind a
# running reconcile, so an unacked message older than VISIBILITY_TIMEOUT really is lost: its
# worker died after the delivery was recorded. kombu puts it back then (swept every
# unacked_restore_interval seconds, every sweep a scan: throttle 1). It must come back well
# before the work queue's queued mark of the key goes stale (WorkQueue.stale_after, 600 s):
# until one or the other, every event and resync of the key is a duplicate. Found by the soak:
# a worker killed between the delivery and the lease left its key idle for ten minutes; with
# 120 s the kill test (test_kills_at_random_instants_lose_no_key) still waited two minutes for
# a key. A reconcile that outlasts it (rare: TANGO calls have deadlines of seconds) is
# delivered again and finds its key busy: one follow-up run, never two at once.
VISIBILITY_TIMEOUT = 30
UNACKED_RESTORE_INTERVAL = 10
broker_transport_options = {
    "visibility_timeout": VISIBILITY_TIMEOUT,
    "unacked_restore_interval": UNACKED_RESTORE_INTERVAL,
    "unacked_restore_throttle": 1,
    **BROKER_PRIORITY_OPTIONS,
}

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
event_serializer = "json"
result_accept_content = ["json"]
task_ignore_result = True
result_backend = None

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_default_queue = QUEUE_NAME
task_create_missing_queues = True
task_soft_time_limit = 120
task_time_limit = 150

# Task events are what Flower shows. They cost three publishes per message, so a worker starts
# without them and Flower switches them on: it broadcasts `enable_events` to the workers every
# 5 s (its --enable_events, on by default), so a worker started after Flower is covered too.
# Without Flower nothing pays for them; `celery control enable_events` does the same by hand.
# A task appears when a worker receives it; the "sent" event would add one more publish per
# message to the watcher's hot path for a state (PENDING) that the queue's own metrics (depth,
# queue latency) already show.
worker_send_task_events = False
task_send_sent_event = False
worker_hijack_root_logger = False
worker_redirect_stdouts = False
