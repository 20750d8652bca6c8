"""The way out: messages created, changed and cancelled; the release of a claimed message
(prepare, gate, send, record) and the Gmail connections it uses.

May import: the shared words, `store`, `timing`, `content`, `audience`, `gmail_client`.
"""
