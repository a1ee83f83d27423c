"""The agentcron.yaml that `agentcron init` writes.

It must run as-is on a fresh machine, offline and without API keys, so the live
tasks only call ``echo`` and ``df``; the model task and the notification URLs are
there to be uncommented.
"""

from __future__ import annotations

EXAMPLE_CONFIG = """\
# agentcron.yaml: what to run, when, and whom to tell when it fails.
# Check it with `agentcron validate`, start the scheduler with `agentcron run`.
# Editor completion: `agentcron schema > agentcron.schema.json`, then add the line
#   # yaml-language-server: $schema=./agentcron.schema.json

# Zone for cron times and `at` dates; without it the system zone is used.
# timezone: Europe/Berlin

# Where problems are reported: Apprise URLs (https://appriseit.com/services/).
# Without any, incidents are only shown by `agentcron list` and `agentcron doctor`.
# notify:
#   - tgram://BOT_TOKEN/CHAT_ID
#   - mailto://user:app-password@gmail.com

# Every key here applies to each task that does not set it itself.
defaults:
  retries: 3            # transient failures (rate limits, timeouts, 5xx) retry this often
  timeout: 10m          # a run is stopped after this long
  stuck_after: 5m       # tell me about a run that takes longer than this

tasks:
  # Every minute, on the minute grid; remove it once you have seen it work.
  hello:
    every: 1m
    command: ["echo", "hello from agentcron"]

  # Cron expressions are quoted: a bare * means something else in YAML.
  disk-space:
    cron: "0 9 * * 1-5"   # weekdays at 09:00
    command: ["df", "-h"]
    timeout: 1m

  # A model call on any OpenAI-compatible endpoint; the reply is the output.
  # story:
  #   cron: "0 2 * * *"
  #   llm:
  #     base_url: https://api.openai.com/v1
  #     model: gpt-4o-mini
  #     api_key_env: OPENAI_API_KEY
  #     prompt: Write a two-paragraph bedtime story about a lighthouse.
  #   deliver: ["tgram://BOT_TOKEN/CHAT_ID"]   # output sent here, retried if it fails
  #   retry_backoff: {base: 1m, cap: 30m}
"""
