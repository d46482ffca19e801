"""Accounts, money and the catalog."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel

from shared.settings.field import setting


class Accounts(BaseModel):
    """Accounts, money and the catalog"""

    currency: str = setting(
        "USD",
        meaning="Currency of new accounts (`panelflow account create`, the demo account) and of the provider "
        "simulator. An account keeps the currency it was created with.",
        type="ISO 4217 currency code",
    )
    low_balance_threshold: Decimal = setting(
        Decimal("5"),
        meaning="An account whose balance falls below this (and has no threshold of its own) gets one "
        "`balance.low` webhook event, sent again only after the balance has risen above it.",
        type="decimal",
        unit="account currency",
    )
    catalog_default_markup_pct: Decimal = setting(
        Decimal("20"),
        meaning="Sell price over the provider's cost given to services `panelflow services sync` imports without "
        "`--markup`.",
        type="decimal",
        unit="percent",
    )
