"""parley: a self-hosted live-chat server speaking LiveChat's Customer Chat API."""

__version__ = "0.1.0"
