"""Signed webhooks: subscriptions, the events queued with the changes they tell of, and
their delivery (the worker, through ``slotwise.outbound``)."""
