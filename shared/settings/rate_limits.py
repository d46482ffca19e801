"""Rate limits of the public API (and Redis, which holds their state when set)."""

from __future__ import annotations

from pydantic import BaseModel

from shared.settings.field import setting


class RateLimits(BaseModel):
    """Rate limits

    Three layers, each N calls per minute with a burst of N: per client IP, per API key, per account tier (all
    keys of an account together). A call over any layer is answered 429 with `Retry-After`. 0 lifts one layer.
    """

    rate_limits_enabled: bool = setting(
        True,
        meaning="`false` lifts every rate limit (benchmarks, or an api only trusted callers reach).",
        type="boolean",
    )
    rate_limit_ip_per_min: int = setting(
        300,
        meaning="Calls per minute from one client address (before the key is checked, so it also slows key "
        "guessing). Behind a proxy, set `trusted_proxies` or every caller shares the proxy's budget.",
        type="integer",
        unit="calls per minute",
    )
    rate_limit_key_default_per_min: int = setting(
        600,
        meaning="Calls per minute per API key, for keys created without a limit of their own.",
        type="integer",
        unit="calls per minute",
    )
    rate_limit_tier_per_min: dict[str, int] = setting(
        default_factory=lambda: {"standard": 1200, "reseller": 6000, "enterprise": 30000},
        meaning="Calls per minute per account, by the account's tier; also the tiers `panelflow account create "
        "--tier TIER` accepts. A tier missing here has no tier limit.",
        type="JSON object (tier name: integer)",
        unit="calls per minute",
    )
    rate_limit_ipv6_prefix: int = setting(
        64,
        meaning="IPv6 callers share one ip-layer budget per network of this many leading bits (one subscriber "
        "usually holds a whole /64, so counting single addresses would let it rotate them).",
        type="integer (1–128)",
        unit="bits",
        ge=1,
        le=128,
    )
    redis_url: str = setting(
        "",
        meaning="Redis holding the rate-limit state, shared by every api process and replica. Empty: each api "
        "process keeps its own, so N processes allow N times the limits. While Redis is down every limit is "
        "off (the api keeps serving; metric `panelflow_ratelimit_store_up` 0, alert PanelflowRateLimitsOff).",
        type="URL (`redis://host:port/db`) or empty",
    )
    rate_limit_redis_prefix: str = setting(
        "panelflow:ratelimit",
        meaning="Prefix of the rate-limit keys in Redis: stacks sharing one Redis database need different ones.",
        type="text",
    )
