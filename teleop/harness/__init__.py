"""The harnesses, the top of the dependency order (they start robots, media processes and consoles
as processes and judge recordings): the latency-injection safety harness (``safety``: ``cells``,
``runner``, ``invariants``, ``report``, ``hostprobe``), the soak (``soak``, ``soak_report``,
``recording_windows``, ``procstats``, ``browser``), compensation scoring and predictor training
through the real stack (``evaluation``, ``train_predictor``), and the one subprocess helper
(``process``), which the launcher shares.

May import: every teleop package, settings, envs, policies (it is the top but for the front doors).

Docstring only, no re-exports: `telesurg launch` imports ``process`` without loading the stack."""
