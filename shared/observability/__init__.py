"""What a running tier tells its operators: Prometheus metrics read from its tables, and logs
(plain or one JSON object a line) scrubbed of personal data."""
from shared.observability.logs import JsonFormatter, PersonalDataFilter, configure_logging, scrub
from shared.observability.metrics import MetricSources, MetricsServer, TierCollector, metrics_registry

__all__ = ["JsonFormatter", "PersonalDataFilter", "configure_logging", "scrub", "MetricSources", "MetricsServer",
           "TierCollector", "metrics_registry"]
