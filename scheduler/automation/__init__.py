"""Mail made by the product: events and the rules they trigger, campaigns with A/B tests and
follow-ups, recurring schedules.

May import: every other room and `gmail_client`.
"""
