"""Events out: the dispatcher that delivers the events in the accounts' ledgers (alerts, auto
top-up requests, limits reached; docs/guards.md) to each account's webhook, signed, in order,
at least once; and the pieces it is made of (the event's body, its signature, the retry policy,
the delivery records). The events themselves are written by the wallet's Lua (``billing/``).
"""
