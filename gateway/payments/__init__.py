"""Payments: money that reaches a wallet from outside, through a payment provider.

A provider (:mod:`.payment_provider`) takes a customer's money and tells the wallet: the
``webhook`` provider leaves it to the operator (the ``wallet_balance_low`` event goes to the
account's webhook, the top-up comes back through the admin API), the ``stripe`` provider
charges through Stripe (:mod:`.stripe_provider`) and credits what Stripe's signed events
report (:mod:`.stripe_events`). Money is credited with ``Wallet.move_money``, once per payment:
the top-up's order id is the payment's own id.
"""
