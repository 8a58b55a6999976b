"""The township's front desk: window intake, registers, appointments, AB posts and the queue (docs/front-desk.md)."""
