"""Notifications beyond the inbox: the outbox of e-mails and webhooks written with each inbox
item, the sender that works through it, each person's choices, team webhooks and the admin's
delivery log, and the weekly digest.

Import the submodules themselves (`outbox`, `events`, `sending`, `hooks`, `preferences`,
`digest`): this package imports nothing on its own, so services that notify may import it
without a cycle.
"""
