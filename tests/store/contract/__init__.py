"""Contract suites of the store's services (issue 9 item 4): one module per service, each test run unchanged
on SQLite and on PostgreSQL through the ``store`` fixture, using the services' public methods only."""
