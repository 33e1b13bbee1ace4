"""What `ccgate doctor` says about a configuration's safety: (fine, message) pairs. The
checks read settings and files only; nothing here talks to the network."""

from __future__ import annotations

from ccgate.edge.keys import default_keys_file, file_is_private
from ccgate.edge.server import is_loopback
from ccgate.shared.settings import Settings


def security_findings(settings: Settings, host: str, has_keys: bool) -> list[tuple[bool, str]]:
    findings: list[tuple[bool, str]] = []
    if is_loopback(host):
        findings.append((True, f"serving {host}: only this machine can reach the gateway"))
    elif not has_keys:
        findings.append(
            (
                False,
                f"serving {host} without keys: anyone who reaches it spends your provider quota; "
                "create one with `ccgate keys create NAME` (or set CCGATE_API_KEYS)",
            )
        )
    else:
        findings.append((True, f"serving {host} with team keys"))
        if not settings.ccgate_admin_port:
            findings.append(
                (
                    False,
                    "/metrics, /readyz and /ccgate/* answer on the public port; set "
                    "CCGATE_ADMIN_PORT to serve them on a cluster-internal port only",
                )
            )
    if not settings.redis_url:
        path = default_keys_file()
        if path.exists():
            findings.append(
                (True, f"keys file {path} is private (0600)")
                if file_is_private(path)
                else (False, f"keys file {path} is readable by others: chmod 600 {path}")
            )
    if settings.bot_skip_permissions:
        findings.append(
            (
                False,
                "BOT_SKIP_PERMISSIONS=true: the bot's Claude Code runs every tool without asking "
                "(--dangerously-skip-permissions); unset it to use BOT_PERMISSION_MODE",
            )
        )
    for platform, allowlist, value in (
        ("telegram", "ALLOWED_TELEGRAM_USER_ID", settings.allowed_telegram_user_id),
        ("discord", "ALLOWED_DISCORD_USER_ID", settings.allowed_discord_user_id),
    ):
        if platform in settings.messaging_platforms() and not (value or "").strip():
            findings.append(
                (False, f"MESSAGING_PLATFORM includes {platform} but {allowlist} is empty")
            )
    return findings
