"""Store-and-forward relay shared by every hop (village → township now, township → county later).

* `server` — `RelayCore` (decode, bound-check, verify with `check_link`, store, receipt after commit,
  gap requests, pull by cursor, enrollment, recovery of a restored device's own records),
  `relay_handlers`, `build_server`, `RelayLimits`.
* `client` — `RelayClient`, the single-flight sync loop over an `Outbox`, `ClientLimits`.
* `ports` — `IngestStore`, `KeyRegistry`, `DownLog` (receiving side), `Outbox` and `RecoveryLog` (sending side).
* `tls` — `ServerTls` / `ClientTls`: TLS for the link (checked at start-up); the signatures stay the trust root.
* `errors` — `RelayError` and its subclasses.
"""
