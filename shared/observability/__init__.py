"""What a running tier tells its operators: Prometheus metrics read from its tables (`metrics`), and
logs (plain or one JSON object a line) scrubbed of personal data (`logs`).

Import the submodule you need: the village laptop loads `logs` only, never the metrics stack."""
