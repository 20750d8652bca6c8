"""What comes back: opens, clicks and unsubscribes from signed links, the mailbox sync
(bounces, replies), support replies in Gmail threads, delivery statistics.

May import: everything above but `automation`, and `gmail_client`.
"""
