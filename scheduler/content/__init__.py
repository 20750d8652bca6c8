"""What a message says: templates and their parts, sandboxed personalization with a budget,
send-time sources (outbound URLs checked), AMP checks, starters, Gmail drafts, signed links,
live images drawn at open time.

May import: the shared words, `store`, `timing`, and `gmail_client` (a draft is read
through a service it is given).
"""
