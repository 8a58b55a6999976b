"""Store-and-forward relay shared by every hop (village → township now, township → county later).

* `server` — `RelayCore` (decode, bound-check, verify with `check_link`, store, receipt after commit,
  gap requests, pull by cursor, enrollment), `relay_handlers`, `build_server`, `RelayLimits`.
* `client` — `RelayClient`, the single-flight sync loop over an `Outbox`, `ClientLimits`.
* `ports` — `IngestStore`, `KeyRegistry`, `DownLog` (receiving side) and `Outbox` (sending side).
* `errors` — `RelayError` and its subclasses.
"""
