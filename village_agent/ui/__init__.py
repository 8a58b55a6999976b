"""The village agent's local web UI: Chinese pages served on 127.0.0.1 only."""
