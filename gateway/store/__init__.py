"""Redis plumbing: the clients (the lean pipelined one and redis-py), every key name, the
embedded server that ``tollgate serve`` starts when no Redis URL is set, and the breaker that
fails closed while Redis is away.
"""
