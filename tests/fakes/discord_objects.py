"""Discord's objects as the fake sends them (users, messages, a button press) and its rule for
message buttons: what discord.py parses and what Discord refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

BOT_ID = "900000000000000001"
GUILD_ID = "800000000000000001"


def check_components(components: Any) -> JSONResponse | None:
    """Discord's rules for message buttons: action rows (type 1) of at most 5 buttons (type 2),
    each with a label (max 80) and a custom_id (1-100 characters)."""
    for row in components or []:
        buttons = row.get("components", []) if row.get("type") == 1 else None
        if buttons is None or not 1 <= len(buttons) <= 5:
            return JSONResponse({"message": "Invalid Form Body", "code": 50035}, status_code=400)
        for button in buttons:
            label, custom_id = str(button.get("label", "")), str(button.get("custom_id", ""))
            if button.get("type") != 2 or len(label) > 80 or not 1 <= len(custom_id) <= 100:
                return JSONResponse(
                    {"message": "Invalid Form Body", "code": 50035}, status_code=400
                )
    return None


def user(user_id: str, name: str, bot: bool = False) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "bot": bot,
    }


BOT_USER = user(BOT_ID, "ccgate", bot=True)


def new_message(
    message_id: str, channel_id: str, author: dict[str, Any], content: str
) -> dict[str, Any]:
    return {
        "id": message_id,
        "channel_id": channel_id,
        "author": author,
        "content": content,
        "timestamp": datetime.now(UTC).isoformat(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
    }


def component_interaction(
    interaction_id: str, token: str, user_id: str, custom_id: str, message: dict[str, Any]
) -> dict[str, Any]:
    """An INTERACTION_CREATE's data: `user_id` pressed the button `custom_id` on `message`, in
    a DM (a channel id starting 77, see FakeDiscord.user_says) or in the server's channel."""
    channel_id = message["channel_id"]
    interaction: dict[str, Any] = {
        "id": interaction_id,
        "application_id": BOT_ID,
        "type": 3,  # MESSAGE_COMPONENT
        "data": {"custom_id": custom_id, "component_type": 2},
        "channel_id": channel_id,
        "token": token,
        "version": 1,
        "message": message,
        "locale": "en-US",
        "app_permissions": "0",
        "entitlements": [],
        "attachment_size_limit": 10 * 1024 * 1024,
    }
    if channel_id.startswith("77"):  # a DM
        interaction |= {"channel": {"id": channel_id, "type": 1}, "user": user(user_id, "u")}
        interaction |= {"context": 1, "authorizing_integration_owners": {"1": user_id}}
    else:
        member = {"user": user(user_id, "u"), "roles": [], "joined_at": message["timestamp"]}
        member |= {"deaf": False, "mute": False, "flags": 0, "permissions": "0"}
        interaction |= {"guild_id": GUILD_ID, "member": member, "context": 0}
        interaction |= {"channel": {"id": channel_id, "type": 0, "guild_id": GUILD_ID}}
        interaction |= {"authorizing_integration_owners": {"0": GUILD_ID}}
    return interaction
