"""Every Redis key Tollgate uses is named here, and nowhere else.

Per-account keys carry the hash tag ``{a:<account id>}`` so that every script touching one
account runs on one Redis Cluster slot. Global keys (API-key lookups, the account index) are
only ever read or written one key per command.
"""

from __future__ import annotations

PREFIX = "tg"


class AccountKeys:
    """Key names of one account; all share one hash tag."""

    __slots__ = ("account_id", "tag")

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.tag = f"{PREFIX}:{{a:{account_id}}}"

    @property
    def profile(self) -> str:
        """Hash: name, plan, hold_policy, created_at."""
        return f"{self.tag}:profile"

    @property
    def wallet(self) -> str:
        """Hash of integer nanodollar counters: cash, held, free_ai, free_cloud, credits,
        topups, refunds, granted, expired, free_granted, free_expired, charges (charges_free
        and charges_credits of them), ``spend:<YYYY-MM>`` per month, and credits_next_end
        (ms); and free_month, the month ("YYYY-MM") of the free quota (absent: the month the
        account was made in; gateway.billing.free_renewal)."""
        return f"{self.tag}:wallet"

    @property
    def transactions(self) -> str:
        """Stream: money flowing in or out of the wallet (top-ups, credits, refunds)."""
        return f"{self.tag}:tx"

    @property
    def ledger(self) -> str:
        """Stream: one entry per settled request, zero-cost ones included (see
        ``gateway.billing.ledger``); entries older than the ledger retention are trimmed."""
        return f"{self.tag}:ledger"

    @property
    def relayed(self) -> str:
        """String: the id of the last ledger entry of this account that is in the global feed."""
        return f"{self.tag}:relayed"

    @property
    def grants(self) -> str:
        """Hash: credit grant id -> what is left of it (nanodollars); see docs/wallet.md."""
        return f"{self.tag}:grants"

    @property
    def grant_order(self) -> str:
        """Zset (scores 0): the grants in drain order, as sortable members (billing/lua)."""
        return f"{self.tag}:grant_order"

    @property
    def key_spend(self) -> str:
        """Hash: ``<key id>|<YYYY-MM>`` -> what the key spent that month (keys with a cap)."""
        return f"{self.tag}:keyspend"

    @property
    def receipts(self) -> str:
        """Hash: receipt number -> the receipt as JSON, written with its top-up (money_move)."""
        return f"{self.tag}:receipts"

    @property
    def cash_lots(self) -> str:
        """Hash: top-up order id -> what is left of it unspent and unrefunded (nanodollars)."""
        return f"{self.tag}:lots"

    @property
    def cash_lot_order(self) -> str:
        """Zset: the cash lots, scored by when they came in (spent oldest first)."""
        return f"{self.tag}:lot_order"

    @property
    def payments(self) -> str:
        """Hash: ``p:<top-up order id>`` -> the payment provider's payment it came from (a
        Stripe PaymentIntent), ``r:<refund order id>`` -> the provider's refund of it
        (gateway.payments)."""
        return f"{self.tag}:payments"

    def order(self, order_id: str) -> str:
        """Hash: the transaction an order id made (idempotency of money moves), kept for the
        order retention, apart from the transactions stream (which is trimmed by age)."""
        return f"{self.tag}:order:{order_id}"

    @property
    def holds(self) -> str:
        """Sorted set: request id scored by the hold's deadline (ms since epoch)."""
        return f"{self.tag}:holds"

    @property
    def hold_amounts(self) -> str:
        """Hash: request id -> nanodollars held."""
        return f"{self.tag}:holdamt"

    @property
    def api_keys(self) -> str:
        """Set of the account's API key ids."""
        return f"{self.tag}:keys"

    def request(self, request_id: str) -> str:
        """Hash: one request while it is pending (no expiry); once settled, a marker of its
        ledger entry (``e``, ``c``, ``f``) kept ``record_ttl``; or a release's tombstone."""
        return f"{self.tag}:req:{request_id}"

    @property
    def delivery(self) -> str:
        """Hash: how far the account's events have gone out to its webhook: the cursor, the
        head event's tries and a record per event (``gateway.events.delivery_state``)."""
        return f"{self.tag}:delivery"

    @property
    def delivery_lock(self) -> str:
        """String with expiry: the token of the dispatcher delivering the account's events."""
        return f"{self.tag}:delivery_lock"

    def bucket(self, scope: str, kind: str) -> str:
        """Hash {level, ts}: token bucket of ``scope`` ("acct", "key:<id>"), ``kind`` rpm/tpm."""
        return f"{self.tag}:rl:{scope}:{kind}"


# The global ledger feed and its relay: one hash tag, so the relay's script runs on one slot.
LEDGER_TAG = f"{PREFIX}:{{ledger}}"


def ledger_feed() -> str:
    """Stream: pointers (account, ledger entry id) to every account's entries, in one order."""
    return f"{LEDGER_TAG}:feed"


def ledger_dirty() -> str:
    """Sorted set: accounts whose ledger may have entries not in the feed yet (score: ms)."""
    return f"{LEDGER_TAG}:dirty"


def ledger_relay_lock() -> str:
    """String with expiry: the token of the process that relays entries into the feed."""
    return f"{LEDGER_TAG}:lock"


def ledger_checkpoint() -> str:
    """String: the last feed id whose accounts' relayed marks are known to be up to date."""
    return f"{LEDGER_TAG}:checkpoint"


def dispatch_epoch() -> str:
    """String: when (unix ms) webhook delivery first started here; the dispatcher's consumer
    group on the feed is made after it (``gateway.events.feed_group``)."""
    return f"{LEDGER_TAG}:dispatch_epoch"


def reaper_lease() -> str:
    """String with expiry: the process that sweeps every account's expired holds now."""
    return f"{PREFIX}:reaper:lease"


def free_renewal_lease() -> str:
    """String with expiry: the process that renews the plans' monthly free quota now."""
    return f"{PREFIX}:free_renewal:lease"


def stripe_event(event_id: str) -> str:
    """String with expiry: a Stripe event (its ``evt_...`` id) already handled."""
    return f"{PREFIX}:stripe_event:{event_id}"


def accounts_index() -> str:
    """Set of every account id."""
    return f"{PREFIX}:accounts"


def api_key_by_hash(key_hash: str) -> str:
    """Hash: the record of one API key, found by the SHA-256 of the secret."""
    return f"{PREFIX}:apikey:{key_hash}"


def api_key_by_id(key_id: str) -> str:
    """String: key id -> SHA-256 of the secret (for revocation)."""
    return f"{PREFIX}:keyid:{key_id}"


def admin_token_hash() -> str:
    """String: SHA-256 of the generated admin token."""
    return f"{PREFIX}:admin_token_sha256"


def admin_tokens() -> str:
    """Hash: SHA-256 of a rotated admin token -> when it ends (unix ms; 0: never)."""
    return f"{PREFIX}:admin_tokens"


def voucher(code: str) -> str:
    """Hash: a voucher's terms (amount, max_redemptions, used, valid_until_ms,
    credit_ends_ms, created_at); one hash tag per code, shared with its redemptions."""
    return f"{PREFIX}:{{v:{code}}}:voucher"


def voucher_redeemed(code: str) -> str:
    """Set: the accounts that redeemed the voucher (once each)."""
    return f"{PREFIX}:{{v:{code}}}:redeemed"
