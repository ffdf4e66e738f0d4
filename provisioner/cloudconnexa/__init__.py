"""The VPN service's half (CloudConnexa), shaped like a provider: its API client and what it
reads and writes (`client`), the pacing under its rate limit (`pace`), the service half of the
plan (`planner`), and the in-memory service the sandbox and the tests run against (`fake`)."""
