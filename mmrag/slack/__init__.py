"""The Slack bot: a Bolt app mounted by the API at ``/slack/events`` or run over Socket Mode."""
