"""The domain and the engine: everything that runs without a web request. Imports
`gmail_client`, never `app`.

Rooms, each allowed to import only the rooms before it:

    store      the database: tables, the message state machine, the queue's queries
    timing     when a message goes: absolute, local time, windows, best hour, cron
    content    what it says: templates, personalization, send-time sources, AMP, links
    audience   who: contacts, suppression, teams, users and Gmail accounts
    engine     the way out: messages created and changed, the release, Gmail connections
    delivery   what comes back: tracking, mailbox sync, thread replies, statistics
    automation mail the product makes: events and rules, campaigns, recurring schedules

The shared words every room uses sit at the top (errors, sanity, typed, commands,
addresses, settings, redact) and import only each other; `wiring` (what one process
shares, built once) and `worker` (the clock that runs the rooms) may import any room.
"""
