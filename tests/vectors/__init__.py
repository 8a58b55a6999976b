"""Test vectors of the wire contract (docs/wire-v1.md) and the script that writes them."""
