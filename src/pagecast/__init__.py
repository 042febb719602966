"""Pagecast: Facebook Messenger campaigns for Facebook Pages."""

__version__ = "0.1.0"
