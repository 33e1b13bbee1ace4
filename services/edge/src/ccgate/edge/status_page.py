"""`GET /ccgate/`: the operator's page — routes and their backends' reachability, the limiter
per provider, usage per caller today, the latest failed tool calls with links to their traces.

Server-rendered (Jinja2, autoescaped) and refreshing itself with a meta refresh: no JavaScript.
It shows names and numbers only — provider ids, model names, key names, counts — never a key,
a provider secret or any prompt or tool text.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from ccgate.edge.routing import Route, Tier, tier_setting
from ccgate.edge.translate.errors import ApiError
from ccgate.shared.days import utc_day

if TYPE_CHECKING:
    from jinja2 import Template

    from ccgate.edge.auth import Authenticator
    from ccgate.edge.gateway import Gateway
    from ccgate.edge.probe import BackendProbe

REFRESH_SECONDS = 2


@cache
def _template() -> Template:
    """Loaded on the first view: Jinja2 is start-up time and memory the hot path never uses."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("ccgate.edge", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("status.html.j2")


@dataclass(frozen=True)
class RouteRow:
    tier: str
    setting: str
    position: int
    provider: str
    model: str
    url: str
    reachable: bool | None  # None: not probed yet
    problem: str | None
    fix: str | None
    context_window: str


def basic_auth_as_key(headers: Mapping[str, str]) -> dict[str, str]:
    """A browser cannot send x-api-key: it may send the team key as the password of HTTP Basic
    auth (any user name); the key is then presented as x-api-key to the usual check."""
    out = dict(headers)
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            out["x-api-key"] = base64.b64decode(value).decode().partition(":")[2]
        except ValueError:
            pass
        out.pop("authorization", None)
    return out


NO_WINDOW_INFO = "unknown: the backend does not say; set MODEL_<TIER>_CONTEXT_WINDOW"


def refused(auth: Authenticator, headers: Mapping[str, str], admin_port: bool) -> Response | None:
    """On the admin port (CCGATE_ADMIN_PORT) the page is open; otherwise it needs a team key
    that may see everybody's usage (one without model restrictions)."""
    if admin_port:
        return None
    try:
        record = auth.identify(basic_auth_as_key(headers))
    except ApiError as error:
        return login_required(error)
    if record is not None and record.models != "*":
        return Response(
            "the status page shows every caller's usage: sign in with a key without model limits",
            status_code=403,
            media_type="text/plain",
        )
    return None


def login_required(error: ApiError) -> Response:
    """The browser's password prompt: user name anything, password a team key."""
    return Response(
        f"{error.message}. Sign in with any user name and a team key as the password.",
        status_code=error.status,
        media_type="text/plain",
        headers={"www-authenticate": 'Basic realm="ccgate", charset="UTF-8"'},
    )


def context_window(gateway: Gateway, tier: Tier, route: Route) -> str:
    """The route's context window: its tier's setting, or what the backend said at start-up."""
    window = gateway.context.windows.window(tier, route)
    return window.describe() if window else NO_WINDOW_INFO


def route_rows(gateway: Gateway, reachability: Mapping[str, Mapping[str, Any]]) -> list[RouteRow]:
    rows = []
    for tier, routes in gateway.router.table().items():
        setting, _ = tier_setting(gateway.settings, tier)
        for position, route in enumerate(routes):
            provider = gateway.providers[route.provider]
            probed = reachability.get(route.provider)
            rows.append(
                RouteRow(
                    "other models" if tier == "default" else tier,
                    setting,
                    position,
                    route.provider,
                    route.model,
                    provider.base_url,
                    None if probed is None else bool(probed["reachable"]),
                    None if probed is None else probed.get("problem"),
                    None if probed is None else probed.get("fix"),
                    context_window(gateway, tier, route),
                )
            )
    return rows


def usage_by_caller(rows: list[Any]) -> list[dict[str, Any]]:
    """Today's usage rows (key, provider, model) summed per caller."""
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = totals.setdefault(
            row.key,
            {"key": row.key, "requests": 0, "input_tokens": 0, "output_tokens": 0, "errors": 0,
             "queued_seconds": 0.0, "models": set()},
        )  # fmt: skip
        for name in ("requests", "input_tokens", "output_tokens", "errors", "queued_seconds"):
            total[name] += getattr(row, name)
        total["models"].add(f"{row.provider}/{row.model}")
    return sorted(totals.values(), key=lambda t: (-t["requests"], t["key"]))


def trace_link(jaeger_ui_url: str | None, trace_id: str | None) -> str | None:
    if not jaeger_ui_url or not trace_id:
        return None
    return f"{jaeger_ui_url.rstrip('/')}/trace/{trace_id}"


async def render(gateway: Gateway, probe: BackendProbe) -> str:
    limiter = await gateway.limiter.status()
    usage = await gateway.usage.rows(None, datetime.now(UTC).date())
    jaeger = gateway.settings.jaeger_ui_url
    failures = [
        {
            "at": datetime.fromtimestamp(f.at, UTC).strftime("%H:%M:%S"),
            "key": f.key,
            "tool": f.tool,
            "reason": f.reason,
            "trace_id": f.trace_id,
            "link": trace_link(jaeger, f.trace_id),
        }
        for f in gateway.tool_failures.recent()
    ]
    return _template().render(
        refresh=REFRESH_SECONDS,
        now=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        day=utc_day(),
        routes=route_rows(gateway, probe.latest()),
        limiter_backend=limiter.get("backend"),
        replica=limiter.get("replica"),
        providers=limiter.get("providers", {}),
        usage=usage_by_caller(usage),
        persistent=gateway.usage.persistent,
        failures=failures,
        jaeger=jaeger,
    )
