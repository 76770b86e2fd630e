"""The price table in force; swapped whole so a request always sees one consistent table."""

from __future__ import annotations

from pricing import PriceTable


class PricingHolder:
    def __init__(self, table: PriceTable) -> None:
        self.table = table

    def replace(self, table: PriceTable) -> None:
        self.table = table
