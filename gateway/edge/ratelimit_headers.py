"""Rate-limit headers and messages (pure). The counting is in ``billing/lua/admit_v5.lua``."""

from __future__ import annotations

from gateway.billing.wallet import LIMIT_NAMES, Admission, Limits


def format_duration(ms: int) -> str:
    """OpenAI's reset format: "20ms", "1.5s", "6m0s"."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s"


def headers(limits: Limits, admission: Admission) -> dict[str, str]:
    """The tighter of the key's and the account's limit, for requests and for tokens."""
    out: dict[str, str] = {}
    caps = limits.as_args()
    for suffix, indexes in (("requests", (0, 2)), ("tokens", (1, 3))):
        active = [i for i in indexes if caps[i] > 0]
        if not active:
            continue
        tightest = min(active, key=lambda i: admission.remaining[i])
        out[f"x-ratelimit-limit-{suffix}"] = str(caps[tightest])
        out[f"x-ratelimit-remaining-{suffix}"] = str(max(admission.remaining[tightest], 0))
        out[f"x-ratelimit-reset-{suffix}"] = format_duration(admission.resets_ms[tightest])
    return out


def refusal_message(limits: Limits, index: int, retry_ms: int, tokens: int) -> str:
    name = LIMIT_NAMES[index]
    cap = limits.as_args()[index]
    unit = "tokens" if index in (1, 3) else "requests"
    if retry_ms < 0:
        return (
            f"This request needs about {tokens} tokens, more than the {name} limit of "
            f"{cap} tokens per minute allows; lower max_tokens or the prompt."
        )
    return (
        f"Rate limit reached: {name} limit of {cap} {unit} per minute. "
        f"Try again in {format_duration(retry_ms)}."
    )
