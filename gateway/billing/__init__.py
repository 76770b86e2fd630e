"""The billing core: accounts, the wallet, holds and their expiry, settling, and the Lua.

Every money move is one Lua script (``lua/``, versioned file names) run atomically in Redis on
one account's hash tag. Nothing here imports aiohttp: the edge calls in with plain values.
"""
