"""OpenAI's image generation (``POST /v1/images/generations``), billed per image.

The price is ``per_image`` of the model, keyed by ``size`` alone or ``size/quality``
("1024x1024", "1024x1024/hd"); quality "standard" or none is the bare size. The request says
how many images (``n``), of what size and quality, so the exact cost is known before anything is
forwarded; an image variant with no price is refused (400 ``model_not_priced``). The charge
counts the images that came back, in case the upstream made fewer than asked.
"""

from __future__ import annotations

import orjson

from gateway import errors
from gateway.apis.base import Endpoint, ParsedRequest
from gateway.apis.tokens import TokenCounter
from gateway.apis.tracking import body_json
from gateway.codecs.json_object import parse_object
from pricing import ModelPrice, PriceNotFound, Usage

DEFAULT_MODEL = "dall-e-2"  # what OpenAI uses when the request names none
DEFAULT_SIZE = "1024x1024"  # the default of every OpenAI image model that has one
MAX_IMAGES = 10


def variant_of(size: str, quality: str | None) -> str:
    return size if quality in (None, "standard") else f"{size}/{quality}"


class ImageGenerations(Endpoint):
    path = "/images/generations"
    streams = False

    def read(self, body: bytes, content_type: str) -> ParsedRequest:
        payload = parse_object(body)
        # What is billed is what is asked: a default the upstream would pick on its own
        # (possibly a different one tomorrow) is written into the request instead.
        defaults = {"model": DEFAULT_MODEL, "size": DEFAULT_SIZE}
        if any(payload.get(name) is None for name in defaults):
            payload = {**payload, **{k: v for k, v in defaults.items() if payload.get(k) is None}}
            body = orjson.dumps(payload)
        req = self.from_payload(payload, body)
        n = payload.get("n")
        n = 1 if n is None else n
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
            raise errors.InvalidRequest(
                f"'n' must be an integer from 1 to {MAX_IMAGES}.", param="n"
            )
        size, quality = payload["size"], payload.get("quality")
        if not isinstance(size, str) or not size:
            raise errors.InvalidRequest("'size' must be a string like '1024x1024'.", param="size")
        if quality is not None and (not isinstance(quality, str) or not quality):
            raise errors.InvalidRequest("'quality' must be a string.", param="quality")
        req.n = n
        req.extra["variant"] = variant_of(size, quality)
        return req

    def can_bill(self, price: ModelPrice) -> bool:
        return bool(price.per_image)

    def worst_case(
        self, req: ParsedRequest, price: ModelPrice, counter: TokenCounter, default_output: int
    ) -> Usage:
        """Exactly what was asked for; refuses a size or quality the model has no price for."""
        variant: str = req.extra["variant"]
        try:
            price.image_price(variant)
        except PriceNotFound:
            known = ", ".join(sorted(price.per_image or {}))
            raise errors.ModelNotPriced(
                f"The model {req.model!r} has no price for images of {variant!r} on this "
                f"gateway (priced: {known}).",
                param="size",
            ) from None
        return Usage(images=req.n, image_variant=variant)

    def usage_from_body(self, req: ParsedRequest, data: bytes) -> Usage | None:
        doc = body_json(data)
        images = doc.get("data") if doc is not None else None
        if not isinstance(images, list):
            return None
        return Usage(images=min(len(images), req.n), image_variant=req.extra["variant"])

    def estimate(self, req: ParsedRequest, text: str, counter: TokenCounter) -> Usage:
        """An answer the gateway cannot read is billed as the images asked for."""
        return Usage(images=req.n, image_variant=req.extra["variant"])
