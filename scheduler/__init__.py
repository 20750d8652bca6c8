"""The release engine: the database queue, timing, personalization and sending.

Runs with no web request. Imports `gmail_client`, never `app`.
"""
