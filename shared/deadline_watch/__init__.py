"""Deadline watch: the deadline tables, the scheduler that wakes the scan, and notifications.

Wiring (a process's bootstrap)::

    engine = make_engine(url)
    store = DeadlineStore(engine, calendar, thresholds)
    relay = OutboxRelay(store, WebhookNotifier(url, secret), supervision_port, owner=process_tag())
    watch = DeadlineWatch(store, SystemClock(), relay=relay)
    watch.start()

Services save hop clocks with `store.save_clock(...)` (in their own transaction via `conn=`) and
queue applicant SMS with `store.enqueue_notification(result_ready_sms(...), now=..., conn=...)`.
"""
