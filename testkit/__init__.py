"""Code that both the tests and the benchmarks use: real processes and HTTP
(``procs``), batch and webhook helpers (``batch``), the generated watch vertical
(``vertical``). Installed with the package (pyproject's packages), so
``python -m testkit.vertical`` (docs/tune.md) works from any folder."""
