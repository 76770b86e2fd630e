"""Every error a client or operator can see, in one tree.

Handlers raise; one middleware (:func:`gateway.app.error_middleware`) renders. The body is
always OpenAI-shaped: ``{"error": {"message", "type", "code", "param"}}``.

    GatewayError
    ├── InvalidRequest          400 invalid_request
    │   ├── ModelNotPriced      400 model_not_priced
    │   ├── ProviderNotConfigured 400 provider_not_configured (no API key for its provider)
    │   ├── VoucherInvalid      400 voucher_invalid       (unknown, used up, expired, used)
    │   ├── PaymentRefused      400 payment_refused       (the payment provider said no)
    │   └── NotFound            404 not_found
    ├── InvalidApiKey           401 invalid_api_key
    ├── AdminUnauthorized       401 invalid_admin_token
    ├── InsufficientBalance     403 insufficient_balance
    ├── MonthlyLimitReached     403 monthly_limit_reached
    ├── AccountSuspended        403 account_suspended     (nothing forwarded)
    ├── AccountClosed           403 account_closed
    ├── PlanCannotTopUp         403 plan_cannot_top_up    (a free plan: upgrade it first)
    ├── ModelNotAllowed         403 model_not_allowed     (the key's allow-list)
    ├── RoleNotAllowed          403 role_not_allowed      (the key's role: a viewer's model call)
    ├── IpNotAllowed            403 ip_not_allowed        (the key's allowed_ips)
    ├── RequestTimeout          408 request_timeout       (a body that never finishes)
    ├── Conflict                409 conflict
    │   └── PaymentsNotConfigured 409 payments_not_configured (no payment provider)
    ├── RequestTooLarge         413 request_too_large
    ├── RateLimited             429 rate_limit_exceeded   (+ Retry-After)
    ├── UpstreamError           502 upstream_error
    │   └── PaymentProviderError 502 payment_provider_error (Stripe unreachable or failing)
    ├── BillingUnavailable      503 billing_unavailable
    └── UpstreamTimeout         504 upstream_timeout
"""

from __future__ import annotations

from collections.abc import Mapping


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code = "internal_error"
    closes = False  # the answer closes the connection (the request's body was not all read)

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ModelNotPriced(InvalidRequest):
    code = "model_not_priced"


class ProviderNotConfigured(InvalidRequest):
    """The model's provider has no API key on this gateway. Refused before anything is held or
    forwarded (it would only come back as the provider's 401, or a network error); a 400 like
    ``model_not_priced``, since retrying cannot help until the operator sets the key."""

    code = "provider_not_configured"


class VoucherInvalid(InvalidRequest):
    code = "voucher_invalid"


class PaymentRefused(InvalidRequest):
    code = "payment_refused"


class NotFound(InvalidRequest):
    status = 404
    code = "not_found"


class InvalidApiKey(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class AdminUnauthorized(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_admin_token"


class InsufficientBalance(GatewayError):
    status = 403
    type = "insufficient_quota"
    code = "insufficient_balance"


class MonthlyLimitReached(GatewayError):
    status = 403
    type = "insufficient_quota"
    code = "monthly_limit_reached"


class AccountSuspended(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "account_suspended"


class AccountClosed(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "account_closed"


class PlanCannotTopUp(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "plan_cannot_top_up"


class ModelNotAllowed(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "model_not_allowed"


class RoleNotAllowed(GatewayError):
    """The key's role does not allow the call: a viewer calling a model, a member or viewer
    managing the account (docs/guards.md, Roles)."""

    status = 403
    type = "invalid_request_error"
    code = "role_not_allowed"


class IpNotAllowed(GatewayError):
    """The client's address is outside the key's ``allowed_ips``."""

    status = 403
    type = "invalid_request_error"
    code = "ip_not_allowed"


class RequestTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"
    closes = True


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class PaymentsNotConfigured(Conflict):
    code = "payments_not_configured"


class RequestTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"
    closes = True


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(GatewayError):
    status = 502
    type = "api_error"
    code = "upstream_error"


class PaymentProviderError(UpstreamError):
    code = "payment_provider_error"


class BillingUnavailable(GatewayError):
    status = 503
    type = "api_error"
    code = "billing_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "api_error"
    code = "upstream_timeout"
