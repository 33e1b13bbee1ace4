"""Anthropic's server tools on backends that have none: the gateway runs them itself."""
