"""jobd — a background job daemon supervisor that replaces cron."""

__version__ = "0.1.0"
