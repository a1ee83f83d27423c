"""Parts of :class:`agentcron.service.Service`, one concern per module; import the
service from :mod:`agentcron.service`, not from here."""
