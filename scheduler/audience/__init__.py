"""Who receives and who sends: contacts, suppression (unsubscribed, bounced), teams and
their roles, users and connected Gmail accounts.

May import: the shared words, `store`, `timing`, `content`.
"""
