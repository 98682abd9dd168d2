"""skytest: what the Python tests (tests/integration, tests/e2e) and the bench
scripts that drive a whole stack (bench/chaos, bench/policy/live_replay.py)
share. Standard library only, so that a bench script runs without pytest.

    paths   the source and build trees, the binaries, sanitizer builds (SLOW)
    procs   process lookup (by pid, by SKY_HOME), stopping, RSS, namespaces
    waits   polling a condition with a deadline
    api     HTTP to the daemons: JSON with the bearer token, plain GETs
    home    one SKY_HOME: its daemons, their APIs, `sky`, what it leaves behind
    tables  the CLI's borderless tables
    observe a real Prometheus and headless Chromium (metrics, dashboard)

How it is found: the package lives in tests/. pytest puts tests/ on sys.path
(tests/pytest.ini: pythonpath = .); a bench script, by hand or started by a
test, inserts <source>/tests itself before it imports skytest.
"""
