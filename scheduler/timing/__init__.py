"""When a message goes: absolute times, the recipient's local time, windows, the best hour,
and the occurrences of a recurring (cron) send.

May import: the shared words and `store`.
"""
