"""Local sandbox: a real control plane, failure scenarios and a Slack emulator for tests and demos."""
