"""Common code for all three tiers: the wire contract, signing and the chain, the service
catalogue, the working-day calendar and deadlines, and the pure domain."""
