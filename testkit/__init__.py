"""Code that both the tests and the benchmarks use: real processes and HTTP
(``procs``), batch and webhook helpers (``batch``), the generated watch vertical
(``vertical``). Not part of the installed package; tests/ and bench/ import it from the
checkout's root."""
