"""The surgeon console: the core (``core``: requests and one command per ``tick``), its
configuration (``config``), the robot connection (``robot_link``), the advisory video hold
(``video_hold``), input devices (``inputs``), the scripted surgeon and trace replay
(``scripted``), clutch and hand–eye mapping (``mapping``); front ends that drive the core: the
terminal (``terminal``) and scripted episodes (``episodes``).

May import: video, netem, correction, wire, settings, envs, policies; never ``telesurg.teleop.robot`` or
the harness.

Docstring only, no re-exports."""
