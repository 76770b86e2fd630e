"""The price table in force inside a running gateway: the holder every request reads, the
file loader, and the live reload that swaps it when the pricing file changes. ``pricing/`` itself
stays pure (no I/O).
"""
