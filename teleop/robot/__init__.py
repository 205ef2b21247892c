"""The robot side: the real-time server (``server``), the safety supervisor and its de-jitter playout
(``supervisor``, ``playout``), the arm (``arm``), fair control intake (``intake``), real-time
scheduling (``realtime``), MCAP recording (``records``, ``recorder``, ``recorder_process``) and
reading (``reader``).

May import: ``telesurg.teleop.wire``, ``telesurg.teleop.settings``, ``envs``; never the console, netem or correction.

Docstring only, no re-exports: spawned children (the recorder) import their package's ``__init__``."""
