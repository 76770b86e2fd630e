"""How much admission sets aside for a request (pure): its worst case, or less when the client
set no output limit of its own.

The worst case is the prompt plus the most output the request can be billed for: the client's
limit (``max_tokens``, ``max_output_tokens``, ...), else the model's ``max_output_tokens``,
else ``default_max_output_tokens``. Held in full, that ceiling strands money: a $0.01 wallet
spent by requests without ``max_tokens`` on a model at 0.60 USD per 1M output tokens is refused
with a quarter of it left, because each request must set 4096 output tokens aside. So a request
without a limit of its own is held for less:

* at most ``hold_output_tokens`` output tokens per completion: the model's (pricing file),
  else the gateway's setting (``None``: no ceiling);
* and at most the plan's ``hold_max`` (USD) in all, but never less than its prompt costs: the
  prompt is known, only the output is a guess.

A client's own limit is held as asked, and a request billed for no output tokens (embeddings,
images, transcriptions) exactly as before. The price of a smaller hold: a reply that writes
more than was held is charged in full when the balance covers it, and under ``strict`` cut to
what the balance can pay, the cut recorded as the request's ``shortfall`` (``settle_v8``).
Set ``max_tokens`` and the hold is exact again. The output bound that a provider's usage report
is judged against (``usage_checks``) stays the full ceiling: a long reply is no anomaly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway.apis import Endpoint, ParsedRequest
from gateway.apis.tokens import TokenCounter
from pricing import ModelPrice, Usage, compute_cost

TOKENS_PER_PRICE = 1_000_000  # token prices are per 1M tokens


@dataclass(frozen=True, slots=True)
class HoldCeilings:
    """What may cap the hold of a request that set no output limit."""

    output_tokens: int | None = None  # per completion: the gateway's hold_output_tokens
    usd: int = 0  # nanodollars in all: the plan's hold_max (0: none)


@dataclass(frozen=True, slots=True)
class Hold:
    """What admission sets aside (``amount``, nanodollars) and what it prices (``usage``), next
    to the request's full worst case (``worst``, costing ``worst_cost``)."""

    amount: int
    usage: Usage
    worst_cost: int
    worst: Usage

    @property
    def capped(self) -> bool:
        """Whether the request may cost more than it holds."""
        return self.amount < self.worst_cost


def size_hold(
    endpoint: Endpoint,
    req: ParsedRequest,
    price: ModelPrice,
    counter: TokenCounter,
    *,
    default_output: int,
    ceilings: HoldCeilings,
) -> Hold:
    """The hold of ``req``: its worst case, capped by ``ceilings`` unless it set an output
    limit of its own (see the module's docstring)."""
    worst = endpoint.worst_case(req, price, counter, default_output)
    worst_cost = compute_cost(worst, price)
    if worst.output_tokens == 0 or endpoint.requested_output(req) is not None:
        return Hold(worst_cost, worst, worst_cost, worst)
    output = held_output(worst, price, endpoint.completions(req), ceilings)
    if output >= worst.output_tokens:
        return Hold(worst_cost, worst, worst_cost, worst)
    held = replace(worst, output_tokens=output)
    return Hold(compute_cost(held, price), held, worst_cost, worst)


def held_output(worst: Usage, price: ModelPrice, completions: int, ceilings: HoldCeilings) -> int:
    """The output tokens held for ``worst``: within the token ceiling per completion, and
    within what the USD cap leaves once the prompt is paid for."""
    output = worst.output_tokens
    per_completion = price.hold_output_tokens
    if per_completion is None:
        per_completion = ceilings.output_tokens
    if per_completion is not None:
        output = min(output, per_completion * completions)
    if ceilings.usd:
        output = min(output, affordable_output(worst, price, ceilings.usd))
    return output


def affordable_output(worst: Usage, price: ModelPrice, usd: int) -> int:
    """How many output tokens fit in ``usd`` (nanodollars) beside ``worst``'s prompt: the most
    whose exact price fits in what the prompt's cost leaves (0 when the prompt alone costs that
    much), so the hold of both is at most ``usd``.

    Exact, not estimated: ``n * output price <= (usd - prompt cost) * 1M``, and ``compute_cost``
    rounds the sum up once; the prompt's own cost is rounded up already and ``usd`` is whole,
    so the sum's ceiling stays within ``usd``. (A price finer than a nanodollar a token may
    leave a token's worth of rounding unused: never too much held, at most one token less.)"""
    output_price = price.for_prompt(worst.prompt_tokens).output or 0
    if output_price == 0:  # output is free: it cannot take the hold past anything
        return worst.output_tokens
    prompt_cost = compute_cost(replace(worst, output_tokens=0), price)
    return max(usd - prompt_cost, 0) * TOKENS_PER_PRICE // output_price
