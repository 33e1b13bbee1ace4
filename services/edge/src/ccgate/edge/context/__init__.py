"""What Claude Code must know about the backend: its models (discovery), each model's real
context window, and how a request is fitted to that window (long-context route, the 400
Claude Code compacts on, usage scaled so its own auto-compaction fires in time)."""
