"""Chat targets of the agent frameworks as Apprise URLs, with the bot token as a placeholder.

Hermes and OpenClaw address a chat as a platform and an id (``telegram:-100123:17``)
and keep the bot token in their own ``.env``. agentcron's ``deliver`` takes Apprise
URLs, so the token must appear in the URL: it is written as ``${TELEGRAM_BOT_TOKEN}``
(the variable both frameworks read), expanded only when the channel is built.
Platforms that Apprise reaches another way (Discord through webhooks, WhatsApp,
Signal, iMessage) cannot be converted from a chat id and are reported instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TELEGRAM_TOKEN = "TELEGRAM_BOT_TOKEN"
SLACK_TOKEN = "SLACK_BOT_TOKEN"
VARIABLE_HINTS = {
    TELEGRAM_TOKEN: "the Telegram bot token (as in the agent's .env)",
    SLACK_TOKEN: "the Slack bot token, xoxb-… (as in the agent's .env)",
    "TELEGRAM_HOME_CHANNEL": "the Telegram chat id Hermes delivers to by default",
}
# Values with the right shape, for checking a draft before the real ones are set.
SAMPLE_VALUES = {
    TELEGRAM_TOKEN: "123456789:" + "A" * 35,
    SLACK_TOKEN: "xoxb-000000000000-000000000000-" + "a" * 24,
    "TELEGRAM_HOME_CHANNEL": "-1000000000000",
}
_CHAT_ID = re.compile(r"^-?\d+$|^@[A-Za-z0-9_]{4,}$")


@dataclass(frozen=True)
class Target:
    """An Apprise URL and the variables it needs; or, with ``url`` None, why there is none."""

    url: str | None
    variables: tuple[str, ...] = ()
    reason: str = ""


def telegram(chat: str | None, thread: str | None = None, home_var: str | None = None) -> Target:
    """``tgram://${TELEGRAM_BOT_TOKEN}/CHAT[:THREAD]``; no chat means ``home_var``'s."""
    variables = [TELEGRAM_TOKEN]
    if not chat:
        if home_var is None:
            return Target(None, reason="no Telegram chat named; add the chat id yourself")
        chat = "${" + home_var + "}"
        variables.append(home_var)
    elif not _CHAT_ID.fullmatch(chat):
        return Target(None, reason=f"{chat!r} is not a Telegram chat id")
    if thread:
        if not thread.isdigit():
            return Target(None, reason=f"{thread!r} is not a Telegram topic id")
        chat = f"{chat}:{thread}"
    return Target("tgram://${" + TELEGRAM_TOKEN + "}/" + chat, tuple(variables))


def slack(channel: str | None) -> Target:
    """``slack://${SLACK_BOT_TOKEN}/CHANNEL`` (``#name``, an id, or ``@user``)."""
    if not channel:
        return Target(None, reason="no Slack channel named; add it yourself")
    if channel.startswith("channel:"):
        channel = channel[len("channel:") :]
    elif channel.startswith("user:"):
        channel = "@" + channel[len("user:") :]
    if not re.match(r"^[#@]?[A-Za-z0-9_.\-]+$", channel):
        return Target(None, reason=f"{channel!r} is not a Slack channel")
    return Target("slack://${" + SLACK_TOKEN + "}/" + channel, (SLACK_TOKEN,))


def unsupported(platform: str) -> Target:
    """Why a platform's chat id cannot become an Apprise URL."""
    if platform == "discord":
        return Target(
            None,
            reason="Apprise posts to Discord through a webhook, not a bot and a channel id: "
            "add discord://WEBHOOK_ID/WEBHOOK_TOKEN to deliver yourself",
        )
    return Target(
        None,
        reason=f"no conversion for {platform!r}: add an Apprise URL for it to deliver yourself "
        "(https://github.com/caronc/apprise/wiki lists the services)",
    )


def parse_telegram_to(to: str) -> tuple[str, str | None]:
    """OpenClaw's Telegram ``to``: ``-100123``, ``-100123:topic:17``, ``-100123:17``,
    optionally prefixed ``telegram:`` or ``telegram:group:``."""
    text = to.strip()
    for prefix in ("telegram:group:", "telegram:channel:", "telegram:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if ":topic:" in text:
        chat, thread = text.split(":topic:", 1)
        return chat, thread
    chat, sep, thread = text.partition(":")
    return chat, (thread if sep else None)
