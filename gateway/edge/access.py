"""What a caller may do, by its account's status and its key's role (docs/guards.md, Roles).

    role     models  wallet, usage, receipts  vouchers  /v1/account (keys, guards)
    owner    yes     read                     redeem    yes
    member   yes     read                     redeem    403 role_not_allowed
    viewer   403     read                     403       403 role_not_allowed

Each check raises before anything is read, held or forwarded. Where the key may be used from
(``allowed_ips``) is checked with the key itself, by :class:`gateway.edge.auth.Authenticator`.
"""

from __future__ import annotations

from gateway import errors
from gateway.edge.auth import Caller

MODEL_ROLES = ("owner", "member")
ACCOUNT_ROLES = ("owner",)


def check_active(caller: Caller) -> None:
    """Refuse (403) a suspended or closed account's traffic before anything is read or held."""
    status = caller.account.status
    if status == "suspended":
        raise errors.AccountSuspended(
            "This account is suspended: no request is forwarded until it is resumed. Contact "
            "the operator of this gateway.")  # fmt: skip
    if status == "closed":
        raise errors.AccountClosed("This account is closed; it takes no more requests.")


def check_role(caller: Caller, roles: tuple[str, ...], doing: str) -> None:
    """Refuse (403 ``role_not_allowed``) a key whose role is not one of ``roles``."""
    if caller.key.role not in roles:
        raise errors.RoleNotAllowed(
            f"This API key's role is {caller.key.role!r}; {doing} takes a key of role "
            f"{' or '.join(repr(r) for r in roles)}."
        )


def check_may_call_models(caller: Caller) -> None:
    """A model call: an active account, a key that is not a viewer."""
    check_active(caller)
    check_role(caller, MODEL_ROLES, "calling a model")


def check_owner(caller: Caller) -> None:
    """The owner's API (``/v1/account/...``): a key of role owner."""
    check_role(caller, ACCOUNT_ROLES, "managing the account")
