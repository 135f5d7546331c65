"""The herd lab: replays thundering herds under each strategy (``resilient herd``)."""
