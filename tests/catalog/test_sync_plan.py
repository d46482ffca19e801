"""The pure part of catalog sync: sell-rate rounding and what a refresh changes."""

from decimal import Decimal

from shared.catalog.sync import plan_sync, sell_rate
from shared.db.catalog import ServiceRow
from shared.upstream.client import ServicesReply
from shared.upstream.results import UpstreamService


def upstream(service: str, rate: str = "1.00", **changes: object) -> UpstreamService:
    values: dict = {"service": service, "name": f"S{service}", "type": "Default", "category": "C",
                    "rate": Decimal(rate), "min": 10, "max": 100,
                    "refill": True, "cancel": False, "dripfeed": True}  # fmt: skip
    values.update(changes)
    return UpstreamService(**values)


def row(service: str, rate: str, cost: str, *, active: bool = True, **changes: object) -> ServiceRow:
    values: dict = {"id": int(service), "name": f"S{service}", "type": "Default", "category": "C",
                    "rate": Decimal(rate), "cost_rate": Decimal(cost), "min_quantity": 10, "max_quantity": 100,
                    "refill": True, "cancel": False, "dripfeed": True, "provider_id": 1,
                    "provider_service_id": service, "active": active}  # fmt: skip
    values.update(changes)
    return ServiceRow(**values)


def test_sell_rate_rounds_half_up_to_five_places() -> None:
    assert sell_rate(Decimal("0.90"), Decimal("20")) == Decimal("1.08000")
    assert sell_rate(Decimal("0.00001"), Decimal("150")) == Decimal("0.00003")  # 0.000025: half-up, not half-even
    assert sell_rate(Decimal("0.01215"), Decimal("33.3")) == Decimal("0.01620")  # 0.01619595
    assert sell_rate(Decimal("1"), Decimal("0")) == Decimal("1")
    assert sell_rate(Decimal("0.12345"), Decimal("12.5")) == Decimal("0.13888")  # 0.13888125


def test_first_import_uses_the_default_markup() -> None:
    writes, summary = plan_sync(
        [], ServicesReply([upstream("1", "0.90")]), markup_pct=None, default_markup_pct=Decimal(20)
    )
    assert summary.added == ["1"]
    assert (writes[0].rate, writes[0].cost_rate) == (Decimal("1.08"), Decimal("0.90"))


def test_refresh_without_markup_keeps_the_sell_rate_and_warns_below_cost() -> None:
    existing = [row("1", "1.50", "1.00"), row("2", "1.20", "1.00")]
    reply = ServicesReply([upstream("1", "1.00"), upstream("2", "1.30")])
    writes, summary = plan_sync(existing, reply, markup_pct=None, default_markup_pct=Decimal(20))
    assert summary.unchanged == ["1"]
    assert summary.updated == ["2"]
    assert [(w.provider_service_id, w.rate, w.cost_rate) for w in writes] == [("2", Decimal("1.20"), Decimal("1.30"))]
    assert summary.below_cost == ["2"]


def test_explicit_markup_reprices_everything() -> None:
    existing = [row("1", "1.50", "1.00")]
    writes, summary = plan_sync(existing, ServicesReply([upstream("1", "1.00")]), markup_pct=Decimal(10),
                                default_markup_pct=Decimal(20))  # fmt: skip
    assert summary.updated == ["1"]
    assert writes[0].rate == Decimal("1.10")


def test_dropped_services_are_deactivated_and_returning_ones_reactivated() -> None:
    existing = [row("1", "1.20", "1.00"), row("2", "1.20", "1.00"), row("3", "1.20", "1.00", active=False)]
    reply = ServicesReply([upstream("1"), upstream("3")], skipped=["{'service': 9}"])
    writes, summary = plan_sync(existing, reply, markup_pct=None, default_markup_pct=Decimal(20))
    assert summary.deactivated == ["2"]
    assert summary.updated == ["3"]  # back on the upstream's list: active again
    assert summary.unchanged == ["1"]
    assert summary.skipped == ["{'service': 9}"]
    assert [w.provider_service_id for w in writes] == ["3"]


def test_changed_terms_are_updates_and_duplicates_ignored() -> None:
    existing = [row("1", "1.20", "1.00")]
    reply = ServicesReply(
        [upstream("1", max=500), upstream("1", max=900), upstream("4", type="Package", dripfeed=True)]
    )
    writes, summary = plan_sync(existing, reply, markup_pct=None, default_markup_pct=Decimal(20))
    assert summary.updated == ["1"]
    assert summary.added == ["4"]
    assert writes[0].max_quantity == 500
    assert writes[1].dripfeed is False  # drip-feed only exists for Default services


def test_services_charging_nothing_for_their_minimum_are_flagged() -> None:
    reply = ServicesReply(
        [
            upstream("1", "0.001", min=4),  # 0.001 x 4 / 1000 rounds to 0
            upstream("2", "0.001", min=5),  # 0.00001: payable
            upstream("3", "0", min=100),
            upstream("4", "0.000004", type="Package", min=1),
            upstream("5", "0.50", type="Package", min=0),
        ]
    )
    writes, summary = plan_sync([], reply, markup_pct=Decimal(0), default_markup_pct=Decimal(20))
    assert summary.charges_nothing == ["1", "3", "4"]
    assert [w.provider_service_id for w in writes] == ["1", "2", "3", "4", "5"]  # imported, but flagged
    # A markup lifting the sell rate above the line clears the flag.
    _, summary = plan_sync([], ServicesReply([upstream("1", "0.001", min=4)]), markup_pct=Decimal(100),
                           default_markup_pct=Decimal(20))  # fmt: skip
    assert summary.charges_nothing == []
