"""What ``janusmail serve`` tells its operator: Prometheus metrics and structured logs.

* :mod:`.metrics`: the facade every door calls (no Prometheus in it; a no-op when metrics are off).
* :mod:`.prom`: the Prometheus implementation, imported only with ``--metrics`` / ``[metrics] listen``.
* :mod:`.collectors`: numbers read from the store at scrape time (size, outbound queue, push subscriptions).
* :mod:`.endpoint`: the ``/metrics`` HTTP server, and the multiprocess directory of ``serve --workers``.
* :mod:`.logs`: text or JSON log lines, the per-connection ids they carry, and the secret scrubber.

Only :mod:`.metrics` and :mod:`.logs` are imported by the doors; they import nothing outside the standard
library at module level.
"""
